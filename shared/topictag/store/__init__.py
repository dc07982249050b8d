"""The store: SQLite by default, PostgreSQL by URL. One repository per aggregate (papers,
teacher labels, adapter versions, training runs, the topic index, API keys, leases) is the
only code that touches SQL; the schema changes only through migrations (``migrations/``)."""

from __future__ import annotations

from sqlalchemy import text

from topictag.store.adapters import AdapterVersionRepository
from topictag.store.api_keys import ApiKeyRepository
from topictag.store.engine import make_db_engine, normalise_url
from topictag.store.leases import LeaseRepository
from topictag.store.papers import InvalidCursor, PaperPage, PaperRepository
from topictag.store.teacher_labels import ParkedPaperRepository, TeacherLabelRepository
from topictag.store.topics import TopicRepository
from topictag.store.training_runs import TrainingRunRepository

__all__ = ["InvalidCursor", "PaperPage", "Store", "open_store"]


class Store:
    """The repositories over one connection pool."""

    def __init__(self, url: str, echo: bool = False):
        self.url = normalise_url(url)
        self.engine = make_db_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name
        self.papers = PaperRepository(self.engine)
        self.teacher_labels = TeacherLabelRepository(self.engine)
        self.parked = ParkedPaperRepository(self.engine)
        self.adapters = AdapterVersionRepository(self.engine)
        self.training_runs = TrainingRunRepository(self.engine)
        self.topics = TopicRepository(self.engine)
        self.api_keys = ApiKeyRepository(self.engine)
        self.leases = LeaseRepository(self.engine)

    def upgrade_schema(self) -> str | None:
        """Bring the schema to this release's (see ``topictag.store.schema``)."""
        from topictag.store.schema import upgrade

        return upgrade(self.engine)

    def refresh_statistics(self) -> None:
        """Let SQLite's query planner know the data (PostgreSQL's autovacuum does this by
        itself): without statistics it may sort a fifth of the papers to list fifty."""
        if self.dialect == "sqlite":
            # Whole tables: a sampled ANALYZE reads the first rows of each index only, and
            # misjudged adapter_version (a filter then sorted 20k rows). 72k papers: 0.1 s.
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA analysis_limit=0")
                conn.exec_driver_sql("ANALYZE")

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str, echo: bool = False) -> Store:
    """The store at ``url``, its schema upgraded to this release's first."""
    store = Store(url, echo=echo)
    store.upgrade_schema()
    return store
