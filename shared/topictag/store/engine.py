"""Connecting to the store: SQLite by default, PostgreSQL by URL, and the SQL shapes both
dialects share (upserts, timestamps)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlmodel import create_engine


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver topictag installs)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_db_engine(url: str, echo: bool = False) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # A pool as large as a server's thread pool: a connection opened and closed per request
        # (the default keeps 5) costs a connect and the pragmas below each time.
        pool = {"pool_size": 20, "max_overflow": 40} if parsed.database and parsed.database != ":memory:" else {}
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _):  # readers never block the tagger's writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


def upsert(engine: Engine, table: Table, keys: list[str], updates: Sequence[str] | None = None):
    """INSERT ... ON CONFLICT (keys) DO UPDATE in the engine's dialect; replays overwrite."""
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)
    updates = updates if updates is not None else [c.name for c in table.columns if c.name not in keys]
    return insert.on_conflict_do_update(index_elements=keys, set_={c: insert.excluded[c] for c in updates})


def aware(ts: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; every stamp topictag writes is UTC."""
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)



def utcnow() -> datetime:
    return datetime.now(UTC)
