"""Dead letters: a message we cannot process goes to the DLQ topic untouched, with the
reason and its origin in headers, so nothing is lost and the partition keeps moving."""

from __future__ import annotations

from datetime import UTC, datetime

from kafka.consumer.fetcher import ConsumerRecord

from topictag.bus.publish import Message

REASON = "topictag.dlq.reason"
SOURCE_TOPIC = "topictag.dlq.topic"
SOURCE_PARTITION = "topictag.dlq.partition"
SOURCE_OFFSET = "topictag.dlq.offset"
FAILED_AT = "topictag.dlq.failed_at"
TRUNCATED_FROM = "topictag.dlq.truncated_from"

# A dead letter must fit a producer request and a broker message (1 MiB by default in
# Kafka) with its headers; one that did not would be resent forever and stall its
# partition. Larger originals keep their first bytes, and their size in a header.
MAX_VALUE_BYTES = 900 * 1024


def dead_letter_message(dlq_topic: str, record: ConsumerRecord, reason: str) -> Message:
    """The dead letter for ``record``: its key and bytes unchanged (up to MAX_VALUE_BYTES),
    why and whence in headers."""
    headers = [
        (REASON, reason.encode()),
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
        (FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    value = record.value or b""
    if len(value) > MAX_VALUE_BYTES:
        headers.append((TRUNCATED_FROM, str(len(value)).encode()))
        value = value[:MAX_VALUE_BYTES]
    key = record.key[:1024] if record.key else record.key
    return Message(dlq_topic, value, key=key, headers=headers)


def dead_letter_reason(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    """The ``topictag.dlq.*`` headers of a dead letter, decoded."""
    return {k.rsplit(".", 1)[-1]: v.decode() for k, v in headers if k.startswith("topictag.dlq.")}
