"""Publishing papers from files onto the ``papers`` topic, keyed by arxiv_id."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError

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


@dataclass
class PublishReport:
    published: int = 0
    ids: list[str] = field(default_factory=list)  # keys of the acknowledged messages
    end_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    failed: list[tuple[str | None, str]] = field(default_factory=list)  # (key, error) of messages not acknowledged
    complete: bool = True  # False: sending stopped early; rows after the failed ones were not sent


class PublishError(RuntimeError):
    """Some messages were not acknowledged by the broker. ``report`` says which were (its
    ``ids``) and which failed; publishing the rest again is safe (the store upserts by id)."""

    def __init__(self, report: PublishReport):
        self.report = report
        key, error = report.failed[0]
        rest = "" if report.complete else "; the rows after them were not sent"
        super().__init__(
            f"{len(report.failed)} message(s) not acknowledged (first: {key or 'no key'}: {error}){rest}; "
            f"{report.published} acknowledged"
        )


def publish_records(
    producer: KafkaProducer,
    topic: str,
    rows: Iterable[dict[str, Any]],
    *,
    on_sent: Callable[[int], None] | None = None,
) -> PublishReport:
    """Send every row and wait for the broker to acknowledge each one. Nothing is dropped
    silently: if any message is not acknowledged, PublishError says which ones were."""
    report = PublishReport()
    futures = []
    for row in rows:
        key, value = record_to_message(row)
        try:
            futures.append((key, producer.send(topic, key=key, value=value)))
        except MessageSizeTooLargeError as exc:  # this row only: the producer refuses it
            report.failed.append((key, f"{exc.__class__.__name__}: {exc}"))
        except KafkaError as exc:  # e.g. no metadata within max_block_ms: the broker is away
            report.failed.append((key, f"{exc.__class__.__name__}: {exc}"))
            report.complete = False
            break
    try:
        producer.flush()
    except KafkaError:
        pass  # each future below says what became of its message
    for key, future in futures:
        try:
            meta = future.get(timeout=60)
        except KafkaError as exc:
            report.failed.append((key, f"{exc.__class__.__name__}: {exc}"))
            continue
        tp = TopicPartition(meta.topic, meta.partition)
        report.end_offsets[tp] = max(report.end_offsets.get(tp, 0), meta.offset + 1)
        report.published += 1
        if key:
            report.ids.append(key)
        if on_sent:
            on_sent(report.published)
    if report.failed:
        raise PublishError(report)
    return report


def publish_file(producer: KafkaProducer, topic: str, path: Path | str, limit: int | None = None) -> PublishReport:
    return publish_records(producer, topic, iter_paper_records(path, limit))
