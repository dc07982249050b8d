"""Tables of the store (SQLModel): papers with their current topic, and every topic an
adapter version gave a paper."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Table, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from topictag.lifecycle import AdapterStatus


class UTCDateTime(TypeDecorator):
    """A UTC timestamp on both dialects: stored in UTC, read back timezone-aware (SQLite
    keeps no zone, so its rows would otherwise come back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _ts(**kw) -> Any:
    return Field(sa_column=Column(UTCDateTime(), **kw))


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model (SQLModel sets ``__table__``; its stubs do not declare it)."""
    return model.__table__  # type: ignore[attr-defined]


class PaperRecord(SQLModel, table=True):
    __tablename__ = "papers"
    # The gateway's list, newest first: the key order, then every column a filter reads, so
    # a filter that matches few papers walks this index alone, not 72k rows of abstracts.
    __table_args__ = (
        Index("ix_papers_feed", "tagged_at", "arxiv_id", "topic", "categories", "adapter_version", "published"),
    )

    arxiv_id: str = Field(primary_key=True, max_length=64)
    title: str = ""
    abstract: str
    categories: str = Field(default="", description="Space separated, as arXiv lists them.")
    published: date | None = Field(default=None, index=True)
    topic: str | None = Field(default=None, index=True, description="Topic from the latest tagging.")
    adapter_version: str | None = Field(default=None, index=True)
    model: str | None = None
    tagged_at: datetime | None = _ts(nullable=True)
    ingested_at: datetime = _ts(nullable=False)


class TopicAssignment(SQLModel, table=True):
    """One row per (paper, adapter version): the topic history across adapters."""

    __tablename__ = "topic_assignments"
    __table_args__ = (UniqueConstraint("arxiv_id", "adapter_version", name="uq_assignment_paper_version"),)

    id: int | None = Field(default=None, primary_key=True)
    arxiv_id: str = Field(foreign_key="papers.arxiv_id", index=True, max_length=64)
    adapter_version: str = Field(max_length=64)
    topic: str
    model: str
    latency_ms: float
    tagged_at: datetime = _ts(nullable=False)


class TeacherLabel(SQLModel, table=True):
    """The teacher's topic for a sampled paper; one per (paper, teacher model)."""

    __tablename__ = "teacher_labels"
    __table_args__ = (UniqueConstraint("arxiv_id", "teacher_model", name="uq_label_paper_teacher"),)

    id: int | None = Field(default=None, primary_key=True)
    arxiv_id: str = Field(index=True, max_length=64)
    abstract: str = Field(description="Kept with the label: training needs it even if the paper row is absent.")
    title: str = ""
    topic: str
    teacher_model: str = Field(max_length=200)
    labelled_at: datetime = _ts(nullable=False)


class ParkedPaper(SQLModel, table=True):
    """A sampled paper the teacher could not label yet; offered to it again later."""

    __tablename__ = "parked_papers"

    arxiv_id: str = Field(primary_key=True, max_length=64)
    payload: str = Field(description="The paper as JSON.")
    reason: str
    attempts: int = 0
    parked_at: datetime = _ts(nullable=False)
    next_attempt_at: datetime = _ts(nullable=False)


class AdapterVersion(SQLModel, table=True):
    """An immutable LoRA adapter version and its life in the registry."""

    __tablename__ = "adapter_versions"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(unique=True, max_length=32, description="v1, v2, ...")
    path: str
    sha256: str = Field(description="Of the adapter's files; also gives its vLLM LoRA id.")
    base_model: str
    training_config: str = Field(default="{}", description="JSON")
    label_snapshot: str = Field(default="{}", description="JSON: labels used (count, last label id, eval ids hash).")
    metrics: str = Field(default="{}", description="JSON: scores on the frozen evaluation split.")
    status: str = Field(default=AdapterStatus.CANDIDATE, index=True, description="An AdapterStatus: candidate, production, refused or retired.")
    reason: str = Field(default="", description="Why it was promoted or refused.")
    created_at: datetime = _ts(nullable=False)
    promoted_at: datetime | None = _ts(nullable=True)


class TrainingRun(SQLModel, table=True):
    """One training request. The request id makes a task delivered twice train once."""

    __tablename__ = "training_runs"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(unique=True, max_length=100)
    status: str = Field(index=True, description="A TrainingStatus: running, promoted, refused, skipped or failed.")
    version: str | None = Field(default=None, max_length=32)
    detail: str = ""
    n_train: int = 0
    n_eval: int = 0
    last_label_id: int = Field(default=0, description="Newest teacher label the run saw.")
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts(nullable=True)


class Lease(SQLModel, table=True):
    """A named lock with an expiry, held in the store so it works across hosts."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=100)
    expires_at: datetime = _ts(nullable=False)


class ApiKey(SQLModel, table=True):
    """A key for the gateway's write endpoints; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    key_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = _ts(nullable=True)


class TopicCluster(SQLModel, table=True):
    """Near-duplicate free-text topics merged under one stable id."""

    __tablename__ = "topic_clusters"

    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(description="The first topic of the cluster; the API shows its most common one.")
    centroid: bytes = Field(description="Mean unit embedding of its topics (float32).")
    topics: int = Field(default=1, description="Distinct topic texts in the cluster.")
    created_at: datetime = _ts(nullable=False)
    revision: int = Field(
        default=0, index=True, sa_column_kwargs={"server_default": "0"},
        description="Raised on every write (one more than the highest so far): a tagger reads the clusters "
        "other taggers wrote since its last look by revision.",
    )


class TopicText(SQLModel, table=True):
    """Which cluster a topic text belongs to; decided once, when the text first appears."""

    __tablename__ = "topic_texts"

    topic: str = Field(primary_key=True)
    cluster_id: int = Field(foreign_key="topic_clusters.id", index=True)


class PaperEmbedding(SQLModel, table=True):
    """all-MiniLM-L6-v2 embedding of a paper's topic and title, for semantic search."""

    __tablename__ = "paper_embeddings"

    arxiv_id: str = Field(primary_key=True, max_length=64)
    vector: bytes = Field(description="Unit-length float32 vector.")
