"""Publishing papers from files onto the ``papers`` topic, keyed by arxiv_id."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer, TopicPartition

from topictag.backoff import Backoff
from topictag.bus.publish import Message, ReliablePublisher
from topictag.files import iter_paper_records

_FIELDS = {"first_seen_date": "published"}


def record_to_message(row: dict[str, Any]) -> tuple[str | None, bytes]:
    """A file row as a ``papers`` message. Rows are sent as they are (renamed to the
    message's field names); the tagger validates them and dead-letters what is wrong."""
    if "_raw" in row:  # a line that was not JSON: pass it on for the DLQ to record
        return None, row["_raw"].encode("utf-8", errors="surrogateescape")
    message = {_FIELDS.get(k, k): v for k, v in row.items()}
    key = message.get("arxiv_id")
    return (str(key) if key not in (None, "") else None), json.dumps(message, ensure_ascii=False).encode()


# A file publish retries briefly, then reports what the broker did not take: the caller
# decides whether to publish it again (safe: the store upserts by id).
PUBLISH_ATTEMPTS = 3
PUBLISH_BACKOFF = Backoff(0.5, 5.0)


@dataclass
class PublishReport:
    published: int = 0
    ids: list[str] = field(default_factory=list)  # keys of the acknowledged messages
    end_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    failed: list[tuple[str | None, str]] = field(default_factory=list)  # (key, error) of messages not acknowledged


class PublishError(RuntimeError):
    """Some messages were not acknowledged by the broker. ``report`` says which were (its
    ``ids``) and which failed; publishing the rest again is safe (the store upserts by id)."""

    def __init__(self, report: PublishReport):
        self.report = report
        key, error = report.failed[0]
        super().__init__(
            f"{len(report.failed)} message(s) not acknowledged (first: {key or 'no key'}: {error}); "
            f"{report.published} acknowledged"
        )


def publish_records(producer: KafkaProducer, topic: str, rows: Iterable[dict[str, Any]]) -> PublishReport:
    """Send every row through ``producer`` and wait for the broker to acknowledge each one,
    resending what it did not. Nothing is dropped silently: if any message is still not
    acknowledged, PublishError says which ones were."""
    messages = [Message(topic, value, key=key) for key, value in map(record_to_message, rows)]
    delivery = ReliablePublisher(producer=producer, backoff=PUBLISH_BACKOFF).deliver(messages, attempts=PUBLISH_ATTEMPTS)
    report = PublishReport(failed=[(_key(m), error) for m, error in delivery.failed])
    for m, meta in delivery.acknowledged:
        tp = TopicPartition(meta.topic, meta.partition)
        report.end_offsets[tp] = max(report.end_offsets.get(tp, 0), meta.offset + 1)
        report.published += 1
        if key := _key(m):
            report.ids.append(key)
    if report.failed:
        raise PublishError(report)
    return report


def _key(message: Message) -> str | None:
    return message.key.decode() if isinstance(message.key, bytes) else message.key


def publish_file(producer: KafkaProducer, topic: str, path: Path | str, limit: int | None = None) -> PublishReport:
    return publish_records(producer, topic, iter_paper_records(path, limit))

