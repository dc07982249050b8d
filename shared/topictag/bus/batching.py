"""Polling a batch and committing it: the shape every consumer loop here shares."""

from __future__ import annotations

import threading
import time
from collections import Counter

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from topictag import metrics

_IDLE_POLL_MS = 1000


def poll_batch(consumer: KafkaConsumer, batch_size: int, max_wait_ms: int, stopping: threading.Event) -> list[ConsumerRecord]:
    """Up to ``batch_size`` records: waits up to 1 s for the first, then at most
    ``max_wait_ms`` to fill the batch. Empty when idle, so the caller can check for a stop.
    Updates the consumer's lag and consumed-message metrics."""
    batch = _poll_batch(consumer, batch_size, max_wait_ms, stopping)
    group = consumer.config.get("group_id")
    if group:
        for topic, n in Counter(r.topic for r in batch).items():
            metrics.MESSAGES_CONSUMED.labels(group, topic).inc(n)
        try:
            record_lag(consumer, group)
        except KafkaError:  # a metric never stops the worker (e.g. a partition revoked meanwhile)
            pass
    return batch


def fetch_lag(consumer: KafkaConsumer) -> dict[str, int]:
    """Per topic: messages beyond this consumer's position on the partitions it holds, from
    the high-water marks of its own fetch responses (no broker call; ListOffsets, behind
    ``end_offsets()``, is wrong on some brokers). Partitions not fetched yet count 0."""
    lag = {topic: 0 for topic in consumer.subscription() or ()}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        # A fetch response implies a known position, so position() needs no broker call here.
        position = consumer.position(tp, timeout_ms=0) if highwater is not None else None
        if position is not None:
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
    return lag


def record_lag(consumer: KafkaConsumer, group: str) -> None:
    # Every subscribed topic is set, 0 when this worker holds none of its partitions, so a
    # worker that lost its partitions in a rebalance does not keep reporting their old lag.
    for topic, lag in fetch_lag(consumer).items():
        metrics.CONSUMER_LAG.labels(group, topic).set(lag)


def _poll_batch(
    consumer: KafkaConsumer, batch_size: int, max_wait_ms: int, stopping: threading.Event
) -> list[ConsumerRecord]:
    batch: list[ConsumerRecord] = []
    deadline = None
    while len(batch) < batch_size and not stopping.is_set():
        if deadline is None:
            timeout = _IDLE_POLL_MS
        else:
            timeout = int((deadline - time.monotonic()) * 1000)
            if timeout <= 0:
                break
        polled = consumer.poll(timeout_ms=timeout, max_records=batch_size - len(batch))
        for records in polled.values():
            batch.extend(records)
        if batch and deadline is None:
            deadline = time.monotonic() + max_wait_ms / 1000
        if not batch and not polled:
            return []
    return batch


def batch_offsets(records: list[ConsumerRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit after ``records``: one past the last record of each partition."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
    return {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
