"""Papers and the topics each adapter version gave them. Writes are idempotent upserts,
so a replayed message updates the row it made the first time instead of adding one."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import case, func, text, tuple_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from topictag.schemas import Paper, TagResult
from topictag.store.engine import aware, upsert, utcnow
from topictag.store.models import PaperRecord, TeacherLabel, TopicAssignment, TopicText, table_of


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class PaperPage:
    items: list[PaperRecord]  # rows with PaperRecord's summary attributes (_SUMMARY), no abstract
    next_cursor: str | None


_SUMMARY = (PaperRecord.arxiv_id, PaperRecord.title, PaperRecord.categories, PaperRecord.published,
            PaperRecord.topic, PaperRecord.adapter_version, PaperRecord.tagged_at)
_PAPER_UPDATES = ("title", "abstract", "categories", "published", "topic", "adapter_version", "model", "tagged_at")
_ASSIGNMENT_UPDATES = ("topic", "model", "latency_ms", "tagged_at")
# A paper counts as tagged once a student topic is stored for it.
_TAGGED = col(PaperRecord.tagged_at).is_not(None)


def _encode_cursor(tagged_at: datetime, arxiv_id: str) -> str:
    raw = json.dumps([tagged_at.isoformat(), arxiv_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, arxiv_id = json.loads(raw)
        if not isinstance(arxiv_id, str) or "\x00" in arxiv_id:  # PostgreSQL refuses NUL in text
            raise ValueError(arxiv_id)
        return aware(datetime.fromisoformat(stamp)), arxiv_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None


def as_paper(row: PaperRecord) -> Paper:
    """A stored paper as it travels on the bus (to tag it again, or to ask the teacher)."""
    return Paper(arxiv_id=row.arxiv_id, title=row.title, abstract=row.abstract,
                 categories=row.categories.split(), published=row.published)


def as_tagged(row: PaperRecord) -> tuple[Paper, TagResult]:
    """A stored tagged paper with its current topic, as the tagger produced it."""
    result = TagResult(arxiv_id=row.arxiv_id, topic=row.topic or "", adapter_version=row.adapter_version or "base",
                       model=row.model or "", latency_ms=0, tagged_at=row.tagged_at or utcnow())
    return as_paper(row), result


class PaperRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def save_tagged(self, tagged: Sequence[tuple[Paper, TagResult]]) -> None:
        """Write papers and their topics in one transaction; replays overwrite, never add."""
        if not tagged:
            return
        now = utcnow()
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
            conn.execute(upsert(self.engine, table_of(PaperRecord), ["arxiv_id"], _PAPER_UPDATES), list(papers.values()))
            conn.execute(
                upsert(self.engine, table_of(TopicAssignment), ["arxiv_id", "adapter_version"], _ASSIGNMENT_UPDATES),
                list(assignments.values()),
            )

    def get(self, arxiv_id: str) -> tuple[PaperRecord, list[TopicAssignment]] | None:
        """A paper with its topic history across adapter versions, oldest first."""
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

    def summaries(self, arxiv_ids: Sequence[str]) -> dict[str, PaperRecord]:
        """Papers as summary rows (no abstract), in one query (search results)."""
        if not arxiv_ids:
            return {}
        query = select(*_SUMMARY).where(col(PaperRecord.arxiv_id).in_(list(arxiv_ids)))  # type: ignore[call-overload]  # sqlmodel types select() up to 4 columns
        with Session(self.engine) as s:
            return {p.arxiv_id: p for p in s.exec(query).all()}

    def to_label(self, arxiv_ids: Sequence[str]) -> list[Paper]:
        """Stored papers, whole, as the teacher is asked about them."""
        if not arxiv_ids:
            return []
        query = select(PaperRecord).where(col(PaperRecord.arxiv_id).in_(list(arxiv_ids)))
        with Session(self.engine) as s:
            return [as_paper(p) for p in s.exec(query).all()]

    def tagged_after(self, arxiv_id: str, limit: int) -> list[tuple[Paper, TagResult]]:
        """Tagged papers in arxiv_id order from just after ``arxiv_id``: a walk over all of
        them in pages (reindexing)."""
        query = select(PaperRecord).where(_TAGGED, PaperRecord.arxiv_id > arxiv_id).order_by(PaperRecord.arxiv_id).limit(limit)
        with Session(self.engine) as s:
            return [as_tagged(p) for p in s.exec(query).all()]

    def tagged_by_other_than(self, version: str, limit: int | None = None) -> list[Paper]:
        """Papers whose topic came from any adapter version but ``version``, newest first."""
        query = (
            select(PaperRecord)
            .where(col(PaperRecord.adapter_version).is_not(None), PaperRecord.adapter_version != version)
            .order_by(col(PaperRecord.published).desc(), col(PaperRecord.arxiv_id).desc())
        )
        if limit:
            query = query.limit(limit)
        with Session(self.engine) as s:
            return [as_paper(p) for p in s.exec(query).all()]

    def list_tagged(
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
        query = select(*_SUMMARY).where(_TAGGED)  # type: ignore[call-overload]  # sqlmodel types select() up to 4 columns
        if topic:
            escaped = topic.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            if self.engine.dialect.name == "sqlite":  # its LIKE ignores case already; lower() per row triples a scan
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
            next_cursor = _encode_cursor(aware(last.tagged_at), last.arxiv_id)
        return PaperPage(rows, next_cursor)

    def topic_counts(self, limit: int = 100, offset: int = 0) -> list[tuple[str, int]]:
        query = (
            select(PaperRecord.topic, func.count().label("n"))
            .where(_TAGGED)
            .group_by(PaperRecord.topic)
            .order_by(text("n DESC"), col(PaperRecord.topic))
            .offset(offset)
            .limit(limit)
        )
        with Session(self.engine) as s:
            rows = [(t, n) for t, n in s.exec(query).all()]
        return cast(list[tuple[str, int]], rows)  # a tagged paper has a topic: save() writes both

    def count_tagged(self, adapter_version: str | None = None) -> int:
        """Tagged papers, or those whose current topic came from ``adapter_version``."""
        query = select(func.count()).select_from(PaperRecord).where(_TAGGED)
        if adapter_version is not None:
            query = query.where(PaperRecord.adapter_version == adapter_version)
        with Session(self.engine) as s:
            return s.exec(query).one()

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

    def student_and_teacher_topics(self) -> list[tuple[str | None, str | None, str]]:
        """(adapter version, student topic, teacher topic) for every tagged paper the
        teacher labelled too."""
        query = (
            select(PaperRecord.adapter_version, PaperRecord.topic, TeacherLabel.topic)
            .join(TeacherLabel, col(TeacherLabel.arxiv_id) == col(PaperRecord.arxiv_id))
            .where(_TAGGED)
        )
        with Session(self.engine) as s:
            return [(v, st, te) for v, st, te in s.exec(query).all()]
