"""Fixtures over real components: the embedded Kafka-protocol broker, SQLite and the
PostgreSQL on 127.0.0.1:5432, and the real SmolLM2 student on vLLM (one engine per session)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from topictag.bus.embedded import EmbeddedBroker
from topictag.settings import KafkaSettings, PathSettings, Settings, StoreSettings
from topictag.store import Store, open_store

# Abstracts cut shorter and topics bounded tighter than the product's defaults, for every
# engine the tests start, in this process and in the services they run as subprocesses
# (which inherit the variables): on a 2-core CPU without native bf16 the model's prefill
# (~1 s a paper at 128 tokens) and decode steps (~0.2 s each) are most of the suite's time,
# and no test is about either bound (an explicit setting still wins).
os.environ.setdefault("TOPICTAG_STUDENT_MAX_ABSTRACT_TOKENS", "64")
os.environ.setdefault("TOPICTAG_STUDENT_MAX_NEW_TOKENS", "16")
# Tests start from the base model, so what they check of the loop (first trained version v1,
# "base" before a promotion) does not depend on the bundle; the tests of the shipped adapter
# and of the demo turn it on.
os.environ.setdefault("TOPICTAG_STUDENT_SHIPPED_ADAPTER", "false")

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TOPICTAG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The repository's data/ folder (sample papers, teacher labels, shipped adapter)."""
    return Settings().paths.bundle_dir


@pytest.fixture(scope="session")
def teacher_labels(bundle) -> "pd.DataFrame":
    """The 750 recorded teacher labels (abstract, teacher_topic, ...)."""
    import pandas as pd

    return pd.read_parquet(bundle / "teacher_labels.parquet")


@pytest.fixture(scope="session")
def sample_papers(bundle) -> list[dict]:
    from topictag.files import iter_paper_records

    return list(iter_paper_records(bundle / "papers_sample.parquet"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> EmbeddedBroker:
    with EmbeddedBroker(log_file=tmp_path_factory.mktemp("broker") / "broker.log") as b:
        yield b


def make_settings(tmp_path: Path, **sections) -> Settings:
    """Settings for one test: its own data dir and SQLite file unless given."""
    base = {
        "paths": PathSettings(data_dir=tmp_path / "data"),
        "store": StoreSettings(url=f"sqlite:///{tmp_path / 'topictag.db'}"),
    }
    return Settings(**(base | sections))


@pytest.fixture
def kafka(broker) -> KafkaSettings:
    """Kafka settings with topics of this test's own, so tests never see each other's messages."""
    run = uuid.uuid4().hex[:8]
    return KafkaSettings(
        bootstrap=broker.bootstrap,
        papers_topic=f"papers-{run}",
        tagged_topic=f"papers.tagged-{run}",
        dlq_topic=f"papers.dlq-{run}",
    )


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"topictag_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("TOPICTAG_TEST_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}: {exc.__class__.__name__}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_store(url: str) -> Store:
    """The store at ``url`` emptied and migrated from nothing (the session's PostgreSQL
    database is shared by the tests of one process)."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    s = Store(url)
    SQLModel.metadata.drop_all(s.engine)
    with s.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    s.upgrade_schema()
    return s


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Store:
    """An empty store on each backend."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        s = fresh_store(request.getfixturevalue("postgres_url"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def student_engine(tmp_path_factory):
    """The real student on vLLM, started once for the whole session."""
    from topictag.student.factory import create_engine

    settings = Settings()
    engine = create_engine(settings)
    yield engine
    engine.close()


# The slowest files first among files of as many tests (xdist orders files by test count,
# then keeps this order). Measured: forcing them first of all (--no-loadscope-reorder) ran
# the heavy files against each other and the suite took 18.0 min instead of 16.8.
_SLOWEST_FIRST = (
    "tests/e2e/test_loop.py",
    "tests/e2e/test_demo.py",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_trainer_kill.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(_SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


@contextmanager
def student_settings(engine, **update):
    """The session's engine with some student settings changed, for a block; restored after."""
    settings = engine.settings
    engine.settings = settings.model_copy(update={"student": settings.student.model_copy(update=update)})
    try:
        yield engine
    finally:
        engine.settings = settings
