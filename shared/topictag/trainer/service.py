"""Wiring the trainer's work to the store, the bus and an evaluation engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


from topictag.adapters.events import ModelEventPublisher
from topictag.adapters.registry import AdapterRegistry
from topictag.adapters.shipped import seed_shipped_adapter
from topictag.bus.kafka import make_producer
from topictag.settings import Settings
from topictag.store import open_store
from topictag.trainer.pipeline import TrainingPipeline


def _eval_engine(settings: Settings):
    from topictag.student.factory import create_engine

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
        production = store.adapters.production()
        current = production.version if production else "base"
        papers = store.papers.tagged_by_other_than(current, limit)
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
