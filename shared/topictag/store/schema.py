"""Schema versions: Alembic migrations bring a database to this release's schema.

``upgrade`` runs at service start and from ``topictag db upgrade``. Services start
together, so it holds a lock while it migrates: a PostgreSQL advisory lock, or a file
lock beside a SQLite database. A database made before topictag had migrations (its
tables created directly, no ``alembic_version``) is adopted: the releases before
migrations completed their schema at every start, and the baseline migration is that
schema, so it is stamped with the baseline and later migrations run as usual.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

import topictag.store.models  # noqa: F401  (the tables the metadata must hold)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"
# Any 64-bit number the store's other users would not pick: "topictag" in ASCII.
_PG_LOCK_KEY = 0x746F706963746167 - (1 << 63)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest migration this release ships."""
    newest = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert newest is not None, "the release ships its migrations"
    return newest


def current(engine: Engine) -> str | None:
    """The database's migration; None for an empty database or one made before migrations."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the database to ``revision``; returns the revision it is at afterwards (None:
    at "base", no migration applied)."""
    with _migration_lock(engine), engine.begin() as conn:
        if MigrationContext.configure(conn).get_current_revision() is None and inspect(conn).has_table("papers"):
            command.stamp(alembic_config(conn), BASELINE)
            log.info("adopted a database made before migrations: stamped %s", BASELINE)
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(alembic_config(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("store schema upgraded from %s to %s", before or "empty", after)
    return after
