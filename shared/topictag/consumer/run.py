"""The one run loop every consuming worker shares, and the one way it is stopped."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from topictag.bus.batching import poll_batch
from topictag.consumer.batch import Batch, Step

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    """Polls the next batch: empty when idle, and soon after ``stopping`` is set."""

    def __call__(self, stopping: threading.Event) -> list[ConsumerRecord]: ...


def kafka_source(consumer: KafkaConsumer, batch_size: int, max_wait_ms: int) -> BatchSource:
    """Batches of up to ``batch_size`` records or ``max_wait_ms``: never more than one batch
    in a worker's hands, so a slow store leaves the backlog in Kafka."""
    return lambda stopping: poll_batch(consumer, batch_size, max_wait_ms, stopping)


class Pipeline:
    """Runs the steps in order over a batch, up to the first that abandons it."""

    def __init__(self, steps: Sequence[Step]):
        self.steps = list(steps)

    def __call__(self, records: list[ConsumerRecord]) -> Batch:
        batch = Batch(records)
        for step in self.steps:
            if not step(batch):
                break
        return batch


def run(
    source: BatchSource,
    process: Callable[[list[ConsumerRecord]], Any],
    stopping: threading.Event,
    *,
    between_batches: Callable[[], None] | None = None,
    on_batch: Callable[[Any], None] | None = None,
    max_batches: int | None = None,
    heartbeat: Path | None = None,
) -> None:
    """Poll and process batches until ``stopping`` is set (or ``max_batches`` non-empty
    ones). A stop lets the batch in hand finish (its steps and commit) before returning;
    ``between_batches`` runs before each poll, when no batch is in hand. ``heartbeat`` is
    touched after each poll and each batch: its age bounds how long the loop has been stuck
    (the liveness check), which an open Kafka connection does not."""
    done = 0
    while not stopping.is_set():
        if between_batches:
            between_batches()
        records = source(stopping)
        beat(heartbeat)
        if not records:
            continue
        outcome = process(records)
        beat(heartbeat)
        if on_batch:
            on_batch(outcome)
        done += 1
        if max_batches is not None and done >= max_batches:
            return


def beat(heartbeat: Path | None) -> None:
    """Touch the heartbeat file; a failed touch is logged, never fatal (liveness will tell)."""
    if heartbeat is None:
        return
    try:
        heartbeat.touch()
    except OSError as exc:
        log.warning("heartbeat %s: %s", heartbeat, exc)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call ``stop``: the run loop finishes and commits the batch in hand,
    then returns, and the caller closes its clients."""

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the current batch", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
