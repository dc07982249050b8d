"""Wiring the trainer's work to the store, the bus and an evaluation engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from topictag.adapters.shipped import seed_shipped_adapter
from topictag.bootstrap import Parts
from topictag.bus.kafka import make_producer
from topictag.settings import Settings
from topictag.store import open_store
from topictag.trainer.pipeline import TrainingPipeline


@contextmanager
def training_pipeline(settings: Settings) -> Iterator[TrainingPipeline]:
    with Parts(settings) as parts:
        seed_shipped_adapter(parts.registry, settings)  # the incumbent a first training must beat
        yield TrainingPipeline(settings, parts.store, parts.registry, parts.evaluation_engine)


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
