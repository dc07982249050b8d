"""Everything under tests/unit is the fast tier (`make test-fast`, `pytest -m unit`): no
model, no broker, no database server."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # A conftest's hook sees the whole session's items: mark only this folder's.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.unit)
