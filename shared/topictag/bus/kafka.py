"""Kafka clients configured from the settings tree (kafka-python)."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from topictag.settings import KafkaSettings

log = logging.getLogger(__name__)


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    if not kafka.bootstrap:
        raise ValueError("no Kafka bootstrap servers: set TOPICTAG_KAFKA_BOOTSTRAP or start the embedded broker")
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap.split(","),
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    if kafka.ssl_cafile:
        config["ssl_cafile"] = str(kafka.ssl_cafile)
    return config


def make_producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer that waits for every replica: nothing acknowledged is lost."""
    config = client_config(kafka) | {
        "acks": "all",
        "enable_idempotence": True,
        "retries": 10,
        "linger_ms": 5,
        "key_serializer": lambda k: k.encode() if isinstance(k, str) else k,
    }
    return KafkaProducer(**(config | overrides))


def make_consumer(kafka: KafkaSettings, group_id: str, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A group consumer with manual commits: offsets move only after the work is done."""
    config = client_config(kafka) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "max_poll_interval_ms": 600_000,  # a CPU batch can take a while; the group must not evict us
    }
    consumer = KafkaConsumer(**(config | overrides))
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def make_admin(kafka: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**(client_config(kafka) | overrides))


def wait_for_broker(kafka: KafkaSettings, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            make_admin(kafka).close()
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka at {kafka.bootstrap} did not answer within {timeout:.0f} s") from exc
            time.sleep(0.5)


def ensure_topics(kafka: KafkaSettings, *names: str) -> None:
    """Create the topics topictag uses, with the configured partitions, if missing."""
    names = names or (kafka.papers_topic, kafka.tagged_topic, kafka.dlq_topic, kafka.labels_topic, kafka.models_topic)
    admin = make_admin(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(n, num_partitions=kafka.partitions, replication_factor=kafka.replication_factor)
            for n in names
            if n not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
            log.info("created topics %s", [t.name for t in missing])
    finally:
        admin.close()


def group_lag(kafka: KafkaSettings, group_id: str, end_offsets: dict[TopicPartition, int]) -> int:
    """Messages not yet committed by ``group_id``, given the end offset of each partition.

    The caller supplies end offsets (a producer knows what it wrote; a consumer has its
    fetch high-water marks) because ListOffsets is not reliable on every broker.
    """
    admin = make_admin(kafka)
    try:
        committed = admin.list_group_offsets(group_id).get(group_id, {})
    finally:
        admin.close()
    lag = 0
    for tp, end in end_offsets.items():
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag += max(0, end - done)
    return lag


def high_water_marks(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> dict[TopicPartition, int]:
    """The end offset of each partition of ``topic``, as fetch responses report it.

    ListOffsets (``end_offsets()``) is exact on Kafka but under-reported by the embedded
    broker after batched produce (the last batch's base offset + 1). So each partition is
    fetched once from that offset: the response carries the true high-water mark, with at
    most the last batch as payload (none on Kafka, where the offset is already the end).
    ``timeout_s`` bounds the wait for the broker (KafkaTimeoutError) and for the fetches.
    """
    consumer = KafkaConsumer(
        **client_config(kafka), enable_auto_commit=False, fetch_max_wait_ms=100,
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return {}
        listed = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, listed[tp])
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in partitions) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        # A partition whose fetch did not come back in time keeps its listed offset.
        return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in partitions}
    finally:
        consumer.close(autocommit=False)


def consumer_lag(kafka: KafkaSettings, topic: str, groups: list[str], timeout_s: float = 10.0) -> dict[str, int]:
    """Lag of each group on ``topic``: end offsets from fetch high-water marks, committed
    offsets from the admin API. A group that never committed lags by the whole topic.
    An unreachable broker raises KafkaTimeoutError after ``timeout_s``."""
    ends = high_water_marks(kafka, topic, timeout_s)
    return {g: group_lag(kafka, g, ends) for g in groups}
