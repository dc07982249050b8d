"""The store: SQLite by default, PostgreSQL by URL. Writes are idempotent upserts, so a
replayed message updates the row it made the first time instead of adding one."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import case, delete, event, func, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, col, create_engine, select

from topictag.schemas import Paper, TagResult
from topictag.store.models import ParkedPaper, PaperRecord, TeacherLabel, TopicAssignment, TopicText


class InvalidCursor(ValueError):
    pass


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


@dataclass(frozen=True)
class PaperPage:
    items: list[PaperRecord]  # rows with PaperRecord's summary attributes (_SUMMARY), no abstract
    next_cursor: str | None


_SUMMARY = (PaperRecord.arxiv_id, PaperRecord.title, PaperRecord.categories, PaperRecord.published,
            PaperRecord.topic, PaperRecord.adapter_version, PaperRecord.tagged_at)


def _encode_cursor(tagged_at: datetime, arxiv_id: str) -> str:
    raw = json.dumps([tagged_at.isoformat(), arxiv_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, arxiv_id = json.loads(raw)
        if not isinstance(arxiv_id, str) or "\x00" in arxiv_id:  # PostgreSQL refuses NUL in text
            raise ValueError(arxiv_id)
        return _aware(datetime.fromisoformat(stamp)), arxiv_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None


def _aware(ts: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; every stamp topictag writes is UTC.
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


_PAPER_UPDATES = ("title", "abstract", "categories", "published", "topic", "adapter_version", "model", "tagged_at")
_ASSIGNMENT_UPDATES = ("topic", "model", "latency_ms", "tagged_at")


class Store:
    def __init__(self, url: str, echo: bool = False):
        self.url = normalise_url(url)
        self.engine = make_db_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name

    def create_schema(self) -> None:
        SQLModel.metadata.create_all(self.engine)
        # create_all adds missing tables only; an index added to a table that exists comes here.
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)

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

    def _upsert(self, table, keys: list[str], updates: Sequence[str] | None = None):
        """INSERT ... ON CONFLICT (keys) DO UPDATE, in the dialect of this store."""
        insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)
        updates = updates if updates is not None else [c.name for c in table.columns if c.name not in keys]
        return insert.on_conflict_do_update(index_elements=keys, set_={c: insert.excluded[c] for c in updates})

    def upsert(self, table, keys: list[str], rows: list[dict]) -> None:
        """Insert ``rows``, or update the rows with the same ``keys``, in one transaction."""
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self._upsert(table, keys), rows)

    def save_tagged(self, tagged: Sequence[tuple[Paper, TagResult]]) -> None:
        """Write papers and their topics in one transaction; replays overwrite, never add."""
        if not tagged:
            return
        now = datetime.now(timezone.utc)
        papers = {}
        for paper, result in tagged:  # a batch may carry the same paper twice: last wins
            papers[paper.arxiv_id] = {
                "arxiv_id": paper.arxiv_id,
                "title": paper.title,
                "abstract": paper.abstract,
                "categories": " ".join(paper.categories),
                "published": paper.published,
                "topic": result.topic,
                "adapter_version": result.adapter_version,
                "model": result.model,
                "tagged_at": result.tagged_at,
                "ingested_at": now,
            }
        assignments = {
            (r.arxiv_id, r.adapter_version): {
                "arxiv_id": r.arxiv_id,
                "adapter_version": r.adapter_version,
                "topic": r.topic,
                "model": r.model,
                "latency_ms": r.latency_ms,
                "tagged_at": r.tagged_at,
            }
            for _, r in tagged
        }
        with self.engine.begin() as conn:
            conn.execute(self._upsert(PaperRecord.__table__, ["arxiv_id"], _PAPER_UPDATES), list(papers.values()))
            conn.execute(
                self._upsert(TopicAssignment.__table__, ["arxiv_id", "adapter_version"], _ASSIGNMENT_UPDATES),
                list(assignments.values()),
            )

    def get_paper(self, arxiv_id: str) -> tuple[PaperRecord, list[TopicAssignment]] | None:
        with Session(self.engine) as s:
            paper = s.get(PaperRecord, arxiv_id)
            if paper is None:
                return None
            history = s.exec(
                select(TopicAssignment)
                .where(TopicAssignment.arxiv_id == arxiv_id)
                .order_by(col(TopicAssignment.tagged_at))
            ).all()
            return paper, list(history)

    def papers_by_id(self, arxiv_ids: Sequence[str]) -> dict[str, PaperRecord]:
        """Papers as summary rows (no abstract), in one query (search results)."""
        if not arxiv_ids:
            return {}
        query = select(*_SUMMARY).where(col(PaperRecord.arxiv_id).in_(list(arxiv_ids)))
        with Session(self.engine) as s:
            return {p.arxiv_id: p for p in s.exec(query).all()}

    def papers_to_label(self, arxiv_ids: Sequence[str]) -> list[Paper]:
        """Stored papers, whole, as the teacher is asked about them."""
        if not arxiv_ids:
            return []
        query = select(PaperRecord).where(col(PaperRecord.arxiv_id).in_(list(arxiv_ids)))
        with Session(self.engine) as s:
            return [p.as_paper() for p in s.exec(query).all()]

    def list_papers(
        self,
        *,
        topic: str | None = None,
        published_from: date | None = None,
        published_to: date | None = None,
        adapter_version: str | None = None,
        category: str | None = None,
        cluster_id: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> PaperPage:
        """Tagged papers, newest first, in pages that stay stable while new papers arrive."""
        # Plain rows of the summary columns: no abstracts, and no ORM objects to build (at 200
        # requests/s those were the gateway's largest cost after the query itself).
        query = select(*_SUMMARY).where(col(PaperRecord.tagged_at).is_not(None))
        if topic:
            escaped = topic.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            if self.dialect == "sqlite":  # its LIKE ignores case already; lower() per row triples a scan
                query = query.where(col(PaperRecord.topic).like(f"%{escaped}%", escape="\\"))
            else:
                query = query.where(col(PaperRecord.topic).ilike(f"%{escaped}%", escape="\\"))
        if published_from:
            query = query.where(col(PaperRecord.published) >= published_from)
        if published_to:
            query = query.where(col(PaperRecord.published) <= published_to)
        if adapter_version:
            query = query.where(PaperRecord.adapter_version == adapter_version)
        if category:
            # categories is space separated: pad it so "cs.LG" never matches "cs.LGX"
            query = query.where((" " + col(PaperRecord.categories) + " ").contains(f" {category} ", autoescape=True))
        if cluster_id is not None:
            query = query.where(
                col(PaperRecord.topic).in_(select(TopicText.topic).where(TopicText.cluster_id == cluster_id))
            )
        if cursor:
            stamp, arxiv_id = _decode_cursor(cursor)
            # A row-value comparison is one range on the (tagged_at, arxiv_id) index; the
            # equivalent OR made SQLite collect and sort every older paper (0.8 s at 72k).
            key = tuple_(col(PaperRecord.tagged_at), col(PaperRecord.arxiv_id))
            query = query.where(col(PaperRecord.tagged_at) <= stamp, key < tuple_(stamp, arxiv_id))
        query = query.order_by(col(PaperRecord.tagged_at).desc(), col(PaperRecord.arxiv_id).desc()).limit(limit + 1)
        with Session(self.engine) as s:
            rows = list(s.exec(query).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = _encode_cursor(_aware(last.tagged_at), last.arxiv_id)
        return PaperPage(rows, next_cursor)

    def topic_counts(self, limit: int = 100, offset: int = 0) -> list[tuple[str, int]]:
        query = (
            select(PaperRecord.topic, func.count().label("n"))
            .where(col(PaperRecord.topic).is_not(None))
            .group_by(PaperRecord.topic)
            .order_by(text("n DESC"), col(PaperRecord.topic))
            .offset(offset)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [(t, n) for t, n in s.exec(query).all()]

    def count_tagged(self) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(PaperRecord).where(col(PaperRecord.tagged_at).is_not(None))).one()

    def count_tagged_since(self, cutoffs: Sequence[datetime]) -> list[int]:
        """For each cutoff, papers whose latest tagging is at or after it: one range scan of
        the feed index from the earliest cutoff. (A re-tag moves a paper's tagged_at.)"""
        if not cutoffs:
            return []
        counts = [func.coalesce(func.sum(case((col(PaperRecord.tagged_at) >= c, 1), else_=0)), 0) for c in cutoffs]
        query = select(*counts).where(col(PaperRecord.tagged_at) >= min(cutoffs))
        with Session(self.engine) as s:
            return [int(n) for n in s.exec(query).one()]

    def count_assignments(self) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(TopicAssignment)).one()


    # -- teacher labels and parked papers (the labeler) -------------------------------------

    def save_teacher_labels(self, labels: Sequence[TeacherLabel]) -> None:
        """Idempotent on (paper, teacher model): a replayed label updates its row."""
        rows = [
            {k: getattr(label, k) for k in ("arxiv_id", "abstract", "title", "topic", "teacher_model", "labelled_at")}
            for label in labels
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self._upsert(TeacherLabel.__table__, ["arxiv_id", "teacher_model"], ["topic", "labelled_at"]), rows)

    def labelled_ids(self, arxiv_ids: Sequence[str], teacher_model: str) -> set[str]:
        with Session(self.engine) as s:
            return set(s.exec(
                select(TeacherLabel.arxiv_id).where(
                    col(TeacherLabel.arxiv_id).in_(list(arxiv_ids)), TeacherLabel.teacher_model == teacher_model
                )
            ).all())

    def count_teacher_labels(self) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(TeacherLabel)).one()

    def last_label_at(self) -> datetime | None:
        with Session(self.engine) as s:
            last = s.exec(select(func.max(TeacherLabel.labelled_at))).one()
        return _aware(last) if last else None

    def park(self, paper: Paper, reason: str, retry_at: datetime, attempts: int = 1) -> None:
        row = {"arxiv_id": paper.arxiv_id, "payload": paper.model_dump_json(), "reason": reason,
               "attempts": attempts, "parked_at": datetime.now(timezone.utc), "next_attempt_at": retry_at}
        with self.engine.begin() as conn:
            conn.execute(self._upsert(ParkedPaper.__table__, ["arxiv_id"], ["reason", "attempts", "next_attempt_at"]), [row])

    def due_parked(self, now: datetime, limit: int) -> list[ParkedPaper]:
        with Session(self.engine) as s:
            return list(s.exec(
                select(ParkedPaper).where(col(ParkedPaper.next_attempt_at) <= now)
                .order_by(col(ParkedPaper.next_attempt_at)).limit(limit)
            ).all())

    def unpark(self, arxiv_ids: Sequence[str]) -> None:
        if arxiv_ids:
            with self.engine.begin() as conn:
                conn.execute(delete(ParkedPaper).where(col(ParkedPaper.arxiv_id).in_(list(arxiv_ids))))

    def count_parked(self) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(ParkedPaper)).one()


def open_store(url: str, echo: bool = False) -> Store:
    store = Store(url, echo=echo)
    store.create_schema()
    return store
