"""Everything under tests/unit is the fast tier (`make test-fast`, `pytest -m unit`): no
model, no broker, no database server."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent
# tests/conftest.py fixtures that start the model, the broker or reach PostgreSQL.
SLOW_FIXTURES = {"student_engine", "broker", "kafka", "postgres_url", "store"}


def pytest_collection_modifyitems(items):
    # A conftest's hook sees the whole session's items: mark only this folder's.
    slow = []
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.unit)
            if used := SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
                slow.append(f"{item.nodeid} uses {', '.join(sorted(used))}")
    if slow:
        raise pytest.UsageError("the fast tier may not start the model, a broker or a database server:\n"
                                + "\n".join(slow))
