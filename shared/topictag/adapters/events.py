"""Announcements on the ``models`` topic, and the tagger's side of them: stay on the
production adapter, switching without a restart."""

from __future__ import annotations

import json
import logging
import time

from kafka import KafkaConsumer, TopicPartition

from topictag import metrics
from topictag.adapters.registry import (
    AdapterRefused,
    AdapterRegistry,
    as_engine_adapter,
    verify_adapter,
)
from topictag.bus.kafka import client_config, ensure_topics
from topictag.bus.publish import Message, PublishFailed, ReliablePublisher
from topictag.settings import KafkaSettings
from topictag.student.engine import AdapterLoadError, StudentEngine

log = logging.getLogger(__name__)


class ModelEventPublisher:
    """Announces promotions and rollbacks on the models topic. The producer is created on
    the first event, so a process that never announces never needs the broker."""

    # The registry is the truth and taggers look at it every 30 s: an announcement is worth
    # a few resends, not a promotion held up for an outage.
    ATTEMPTS = 3

    def __init__(self, kafka: KafkaSettings):
        self.kafka = kafka
        self.publisher = ReliablePublisher(kafka)

    def __call__(self, event: dict) -> None:
        if not self.kafka.bootstrap:
            log.warning("no Kafka configured: taggers see %s on their next periodic look", event["event"])
            return
        message = Message(self.kafka.models_topic, json.dumps(event).encode(), key="production")
        delivery = self.publisher.deliver([message], attempts=self.ATTEMPTS)
        if not delivery.complete:
            raise PublishFailed(delivery)

    def close(self) -> None:
        self.publisher.close(timeout=10)


def model_event_consumer(kafka: KafkaSettings) -> KafkaConsumer:
    """A reader of every partition of the models topic from its current end, in no consumer
    group. Every tagger must see every event, so a group would only get in the way: its join
    handshake never completed under the watch's non-blocking polls, events went unread and
    taggers switched only on their periodic look. Events before now are not needed: a watch
    reads the registry's state when it starts."""
    ensure_topics(kafka, kafka.models_topic)
    consumer = KafkaConsumer(**client_config(kafka), group_id=None, enable_auto_commit=False, auto_offset_reset="latest")
    deadline = time.monotonic() + 30
    while not (ids := consumer.partitions_for_topic(kafka.models_topic)) and time.monotonic() < deadline:
        time.sleep(0.2)  # a topic just created takes a moment to show in the metadata
    if not ids:
        consumer.close()
        raise RuntimeError(f"topic {kafka.models_topic} has no partitions in the broker's metadata")
    partitions = [TopicPartition(kafka.models_topic, p) for p in sorted(ids)]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for tp in partitions:  # resolve the end now, so an event published from here on is read
        consumer.position(tp)
    return consumer


class ProductionAdapterWatch:
    """Keeps an engine on the registry's production adapter.

    The registry is the truth; an event on the models topic only says "look now". A
    periodic look covers a missed event. An adapter that fails verification is refused
    and the engine keeps serving what it served before.
    """

    def __init__(
        self,
        registry: AdapterRegistry,
        engine: StudentEngine,
        base_model: str,
        consumer: KafkaConsumer | None = None,
        resync_s: float = 30.0,
    ):
        self.registry = registry
        self.engine = engine
        self.base_model = base_model
        self.consumer = consumer
        self.resync_s = resync_s
        self._last_sync = 0.0
        self.refused: dict[str, str] = {}  # version -> why this tagger will not serve it

    def sync(self) -> None:
        self._last_sync = time.monotonic()
        row = self.registry.production()
        wanted = row.version if row else None
        current = self.engine.adapter.version if self.engine.adapter else None
        if wanted == current or wanted in self.refused:
            return
        if row is not None:
            try:
                verify_adapter(row, self.base_model)
            except AdapterRefused as exc:
                self.refused[row.version] = str(exc)
                log.error("refusing adapter: %s; still serving %s", exc, self.engine.adapter_version,
                          extra={"adapter_version": row.version, "serving": self.engine.adapter_version})
                return
        old = self.engine.adapter_version
        try:
            self.engine.use_adapter(as_engine_adapter(row) if row else None)
        except AdapterLoadError as exc:  # checksum and base model fine, but not loadable here
            assert row is not None  # only loading an adapter raises it
            self.refused[row.version] = str(exc)
            log.error("refusing adapter %s: %s; still serving %s", row.version, exc, old,
                      extra={"adapter_version": row.version, "serving": old})
            return
        metrics.ADAPTER_IN_SERVICE.labels(old).set(0)
        metrics.ADAPTER_IN_SERVICE.labels(self.engine.adapter_version).set(1)
        log.info("switched adapter %s -> %s", old, self.engine.adapter_version,
                 extra={"adapter_version": self.engine.adapter_version, "previous_adapter_version": old})

    def poll(self) -> None:
        """Non-blocking: sync if an event arrived or the periodic look is due."""
        event = bool(self.consumer and any(self.consumer.poll(timeout_ms=0).values()))
        if event or time.monotonic() - self._last_sync >= self.resync_s:
            self.sync()

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
