"""Wiring the trainer's work to the store, the bus and an evaluation engine, and running
its Celery worker or beat as a process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from sqlmodel import Session, col, select

from topictag.adapters.events import ModelEventPublisher
from topictag.adapters.registry import AdapterRegistry
from topictag.adapters.shipped import seed_shipped_adapter
from topictag.bus.kafka import make_producer
from topictag.settings import Settings
from topictag.store.models import PaperRecord
from topictag.store.repository import open_store
from topictag.trainer.celery_app import create_celery
from topictag.trainer.pipeline import TrainingPipeline

WORKER_ARGV = ["worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO",
               "--without-mingle", "--without-gossip", "--without-heartbeat", "-Q", "topictag-trainer"]


def run_trainer(settings: Settings, role: Literal["worker", "beat"], *, with_beat: bool = False) -> None:
    """Run the trainer's Celery worker (``with_beat``: the beat schedule in the same process)
    or the beat schedule alone (one per deployment)."""
    app = create_celery(settings)
    if role == "worker":
        app.worker_main(WORKER_ARGV + (["--beat"] if with_beat else []))
    else:
        app.start(["beat", "--loglevel=INFO"])


def _eval_engine(settings: Settings):
    from topictag.student.engine import create_engine

    student = settings.student.model_copy(update={"engine": settings.trainer.eval_engine})
    return create_engine(settings.model_copy(update={"student": student}))


@contextmanager
def training_pipeline(settings: Settings) -> Iterator[TrainingPipeline]:
    store = open_store(settings.store_url)
    announce = ModelEventPublisher(settings.kafka)
    try:
        registry = AdapterRegistry(store, announce)
        seed_shipped_adapter(registry, settings)  # the incumbent a first training must beat
        yield TrainingPipeline(settings, store, registry, lambda: _eval_engine(settings))
    finally:
        announce.close()
        store.close()


def retag_older_papers(settings: Settings, limit: int | None = None) -> int:
    """Republish papers tagged by any version but production, newest first, at
    ``trainer.retag_rate`` papers/s; the taggers re-tag them with the production adapter."""
    store = open_store(settings.store_url)
    try:
        production = AdapterRegistry(store).production()
        current = production.version if production else "base"
        query = (
            select(PaperRecord)
            .where(col(PaperRecord.adapter_version).is_not(None), PaperRecord.adapter_version != current)
            .order_by(col(PaperRecord.published).desc(), col(PaperRecord.arxiv_id).desc())
        )
        if limit:
            query = query.limit(limit)
        with Session(store.engine) as s:
            papers = [p.as_paper() for p in s.exec(query).all()]
    finally:
        store.close()
    producer = make_producer(settings.kafka)
    try:
        interval = 1.0 / settings.trainer.retag_rate
        for paper in papers:
            producer.send(settings.kafka.papers_topic, key=paper.arxiv_id, value=paper.to_bytes())
            time.sleep(interval)
        producer.flush()
    finally:
        producer.close(timeout=10)
    return len(papers)
