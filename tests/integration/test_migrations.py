"""The schema changes only through migrations, and they reach databases that exist:
one made by a release before migrations is adopted with its rows, upgrades are safe to
run twice and from services starting together, and the migrated schema is the models'."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from topictag.schemas import Paper, TagResult
from topictag.store import Store, open_store
from topictag.store.schema import BASELINE, current, head, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path) -> str:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(Store(url).url)
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


def topictag_db(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "topictag", "db", *args], env=os.environ | {"TOPICTAG_STORE_URL": url},
        capture_output=True, text=True, timeout=120,
    )


def tagged(arxiv_id: str) -> tuple[Paper, TagResult]:
    paper = Paper(arxiv_id=arxiv_id, title="A title", abstract="An abstract long enough to be a paper.")
    return paper, TagResult(arxiv_id=arxiv_id, topic="Graph Neural Networks", adapter_version="v1", model="m",
                            latency_ms=1.0, tagged_at=datetime(2026, 11, 1, tzinfo=UTC))


def test_migrated_schema_is_the_models(empty_url):
    store = open_store(empty_url)
    try:
        assert current(store.engine) == head()
        with store.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
        assert differences == [], "models changed without a migration: add one (docs/architecture.md)"
    finally:
        store.close()


def test_database_from_before_migrations_is_adopted_with_its_rows(empty_url):
    # The release before migrations created its tables directly: the baseline's schema, with
    # no alembic_version. It had a paper and a topic cluster.
    old = Store(empty_url)
    upgrade(old.engine, BASELINE)
    with old.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(sa.text("INSERT INTO topic_clusters (label, centroid, topics, created_at) "
                             "VALUES ('Graph Neural Networks', :v, 1, :at)"),
                     {"v": b"\0" * 1536, "at": datetime(2026, 11, 1, tzinfo=UTC)})
    old.papers.save_tagged([tagged("2501.00001")])
    assert current(old.engine) is None
    old.close()

    behind = topictag_db(empty_url, "current")
    assert behind.returncode == 1, behind.stdout + behind.stderr

    upgraded = topictag_db(empty_url, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"store schema at {head()}" in upgraded.stdout
    again = topictag_db(empty_url, "upgrade")  # nothing left to do
    assert again.returncode == 0, again.stderr
    assert topictag_db(empty_url, "current").returncode == 0

    store = Store(empty_url)
    try:
        with store.engine.connect() as conn:
            stamped = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert stamped == [head()] and head() >= BASELINE
        assert [(c.label, c.revision) for c in store.topics.clusters()] == [("Graph Neural Networks", 0)]
        found = store.papers.get("2501.00001")
        assert found is not None and found[0].topic == "Graph Neural Networks"
        assert found[0].tagged_at == datetime(2026, 11, 1, tzinfo=UTC)  # read back aware, in UTC
    finally:
        store.close()


def test_services_starting_together_migrate_once(empty_url):
    errors: list[BaseException] = []

    def start_service() -> None:
        try:
            open_store(empty_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start_service) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    store = Store(empty_url)
    try:
        assert current(store.engine) == head()
        store.papers.save_tagged([tagged("2501.00002")])
        assert store.papers.count_tagged() == 1
    finally:
        store.close()
