"""What ``topictag status`` reports: consumer lag per group on the papers topic, tagging
rates, teacher labels, the production adapter and the last training, gathered from the
broker and the store. The broker is optional: without it the rest is still reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from topictag.settings import Settings
from topictag.store import Store

WINDOWS_MIN = (1, 5, 60)


class GroupLag(BaseModel):
    topic: str
    group: str
    lag: int | None = Field(description="Messages the group has not committed; null without a broker.")


class TaggedWindow(BaseModel):
    minutes: int
    papers: int = Field(description="Papers whose latest tagging falls in the last `minutes`.")
    per_minute: float


class Tagging(BaseModel):
    total: int
    windows: list[TaggedWindow]


class TeacherLabels(BaseModel):
    count: int
    last_labelled_at: datetime | None


class ProductionAdapter(BaseModel):
    version: str
    bleu3: float | None = Field(description="BLEU-3 on the frozen evaluation split.")
    rouge1_f: float | None = Field(description="ROUGE-1 F on the frozen evaluation split.")
    promoted_at: datetime | None
    reason: str


class LastTraining(BaseModel):
    request_id: str
    status: str
    version: str | None
    detail: str
    n_train: int
    n_eval: int
    started_at: datetime
    finished_at: datetime | None


class SystemStatus(BaseModel):
    at: datetime
    broker: str | None = Field(description="Bootstrap servers asked for lag; null when none is configured.")
    broker_error: str | None = Field(description="Why lag is unknown (no broker configured, unreachable).")
    lag: list[GroupLag]
    tagged: Tagging
    teacher_labels: TeacherLabels
    production_adapter: ProductionAdapter | None = Field(description="Null: the base model is in production.")
    last_training: LastTraining | None


def worker_groups(settings: Settings) -> list[tuple[str, str]]:
    """(consumer group, topic) of the tagger and the labeler; the labeler's topic is
    ``papers.tagged`` under the confidence policy."""
    from topictag.labeler.sampling import labeler_topic

    return [(settings.tagger.group_id, settings.kafka.papers_topic), (settings.labeler.group_id, labeler_topic(settings))]


def consumer_lags(settings: Settings, timeout_s: float) -> tuple[list[GroupLag], str | None]:
    """Lag of the tagger and labeler groups on the topics they read, and why it is unknown if it is."""
    from kafka.errors import KafkaError

    from topictag.bus.kafka import consumer_lag

    pairs = worker_groups(settings)
    unknown = [GroupLag(topic=topic, group=g, lag=None) for g, topic in pairs]
    if not settings.kafka.bootstrap:
        return unknown, "no broker configured (TOPICTAG_KAFKA_BOOTSTRAP is unset)"
    try:
        by_topic = {t: consumer_lag(settings.kafka, t, [g for g, tt in pairs if tt == t], timeout_s=timeout_s)
                    for t in dict.fromkeys(t for _, t in pairs)}
        lags = [GroupLag(topic=topic, group=g, lag=by_topic[topic][g]) for g, topic in pairs]
    except (KafkaError, OSError) as exc:
        # kafka-python's messages already start with the error's name
        return unknown, f"broker unreachable at {settings.kafka.bootstrap}: {str(exc) or exc.__class__.__name__}"
    return lags, None


def tagging(store: Store, now: datetime) -> Tagging:
    counts = store.papers.count_tagged_since([now - timedelta(minutes=m) for m in WINDOWS_MIN])
    return Tagging(
        total=store.papers.count_tagged(),
        windows=[TaggedWindow(minutes=m, papers=n, per_minute=round(n / m, 2)) for m, n in zip(WINDOWS_MIN, counts)],
    )


def production_adapter(store: Store) -> ProductionAdapter | None:
    row = store.adapters.production()
    if row is None:
        return None
    scores = json.loads(row.metrics or "{}")
    return ProductionAdapter(
        version=row.version, bleu3=scores.get("bleu3"), rouge1_f=scores.get("rouge1_f"),
        promoted_at=row.promoted_at, reason=row.reason,
    )


def last_training(store: Store) -> LastTraining | None:
    latest = store.training_runs.latest(1)
    if not latest:
        return None
    run = latest[0]
    return LastTraining(
        request_id=run.request_id, status=run.status, version=run.version, detail=run.detail,
        n_train=run.n_train, n_eval=run.n_eval, started_at=run.started_at, finished_at=run.finished_at,
    )


def gather_status(settings: Settings, store: Store, broker_timeout_s: float = 5.0) -> SystemStatus:
    now = datetime.now(UTC)
    lag, broker_error = consumer_lags(settings, broker_timeout_s)
    return SystemStatus(
        at=now,
        broker=settings.kafka.bootstrap,
        broker_error=broker_error,
        lag=lag,
        tagged=tagging(store, now),
        teacher_labels=TeacherLabels(count=store.teacher_labels.count(), last_labelled_at=store.teacher_labels.last_labelled_at()),
        production_adapter=production_adapter(store),
        last_training=last_training(store),
    )


def teacher_agreement(store: Store) -> list[tuple[str, int, float]]:
    """(adapter version, papers, ROUGE-1 F) of the student's current topics against the
    teacher's, for the papers both tagged, by the version that tagged them ("base": none)."""
    from topictag.evaluation import score

    by_version: dict[str, list[tuple[str, str]]] = {}
    for version, student, teacher in store.papers.student_and_teacher_topics():
        by_version.setdefault(version or "base", []).append((student or "", teacher))
    return [
        (version, len(pairs), score([s for s, _ in pairs], [t for _, t in pairs], embeddings=False)["rouge1_f"])
        for version, pairs in sorted(by_version.items())
    ]
