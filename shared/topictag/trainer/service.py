"""Wiring the trainer's work to the store, the bus and an evaluation engine, and running
its Celery worker or beat as a process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from topictag.adapters.shipped import seed_shipped_adapter
from topictag.bootstrap import Parts
from topictag.bus.publish import Message, PublishFailed, ReliablePublisher
from topictag.settings import Settings
from topictag.trainer.pipeline import TrainingPipeline

_RETAG_ATTEMPTS = 10


@contextmanager
def training_pipeline(settings: Settings) -> Iterator[TrainingPipeline]:
    with Parts(settings) as parts:
        seed_shipped_adapter(parts.registry, settings)  # the incumbent a first training must beat
        yield TrainingPipeline(settings, parts.store, parts.registry, parts.evaluation_engine)


def retag_older_papers(settings: Settings, limit: int | None = None) -> int:
    """Republish papers tagged by any version but production, newest first, at
    ``trainer.retag_rate`` papers/s; the taggers re-tag them with the production adapter."""
    with Parts(settings) as parts:
        production = parts.store.adapters.production()
        papers = parts.store.papers.tagged_by_other_than(production.version if production else "base", limit)
    # One paper at a time, each acknowledged before the next, so the rate holds; a paper the
    # broker still refuses after the resends fails the job instead of vanishing.
    publisher = ReliablePublisher(settings.kafka)
    try:
        interval = 1.0 / settings.trainer.retag_rate
        for paper in papers:
            started = time.monotonic()
            message = Message(settings.kafka.papers_topic, paper.to_bytes(), key=paper.arxiv_id)
            delivery = publisher.deliver([message], attempts=_RETAG_ATTEMPTS)
            if not delivery.complete:
                raise PublishFailed(delivery)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        publisher.close(timeout=10)
    return len(papers)
