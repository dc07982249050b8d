"""The tagger: a consumer-group worker on ``papers``.

Each round: poll a batch (up to ``batch_size`` papers or ``max_wait_ms``), send malformed
messages to the DLQ, tag the rest in one engine call, write results to the store and to
``papers.tagged``, and only then commit the batch's offsets. A crash anywhere before the
commit replays the batch, and the store's upserts make the replay harmless
(at-least-once delivery, exactly-once rows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError

from topictag import metrics
from topictag.adapters.events import ProductionAdapterWatch
from topictag.backoff import Backoff
from topictag.bus.batching import batch_offsets, poll_batch
from topictag.bus.dead_letter import dead_letter_message
from topictag.bus.publish import Message, ReliablePublisher
from topictag.schemas import InvalidPaper, Paper, TagResult, decode_paper
from topictag.settings import Settings
from topictag.store.repository import Store
from topictag.store.retry import with_store_retries
from topictag.topics.index import TopicIndex
from topictag.student.engine import StudentEngine

log = logging.getLogger(__name__)

@dataclass
class BatchOutcome:
    tagged: list[TagResult] = field(default_factory=list)
    dead: list[tuple[ConsumerRecord, str]] = field(default_factory=list)
    committed: bool = False


def reason_kind(reason: str) -> str:
    """A low-cardinality label for a DLQ reason, for metrics."""
    return reason.split(":", 1)[0].split(" ", 1)[0][:32]


class TaggerWorker:
    def __init__(
        self,
        settings: Settings,
        engine: StudentEngine,
        store: Store,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        *,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        adapter_watch: ProductionAdapterWatch | None = None,
        topic_index: TopicIndex | None = None,
    ):
        self.settings = settings
        self.engine = engine
        self.store = store
        self.consumer = consumer
        # Results and dead letters go out through this: resent through a new producer after a
        # broker failure, so the worker outlives a broker restart.
        self.backoff = Backoff(settings.tagger.retry_backoff_s, settings.tagger.retry_backoff_max_s)
        self.publisher = ReliablePublisher(settings.kafka, producer, backoff=self.backoff)
        self.on_batch = on_batch
        self.adapter_watch = adapter_watch
        self.topic_index = topic_index
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self, max_batches: int | None = None) -> None:
        """Tag until ``stop()`` (or ``max_batches`` non-empty batches)."""
        done = 0
        metrics.ADAPTER_IN_SERVICE.labels(self.engine.adapter_version).set(1)
        if self.adapter_watch:
            self.adapter_watch.sync()
        while not self.stopping.is_set():
            if self.adapter_watch:  # between batches: a batch is tagged by one adapter
                self.adapter_watch.poll()
            records = self.poll_batch()
            if not records:
                continue
            outcome = self.process(records)
            if self.on_batch:
                self.on_batch(outcome)
            done += 1
            if max_batches is not None and done >= max_batches:
                break

    def poll_batch(self) -> list[ConsumerRecord]:
        cfg = self.settings.tagger
        return poll_batch(self.consumer, cfg.batch_size, cfg.max_wait_ms, self.stopping)

    def process(self, records: list[ConsumerRecord]) -> BatchOutcome:
        outcome = BatchOutcome()
        papers: list[Paper] = []
        for record in records:
            try:
                papers.append(decode_paper(record.value, self.settings.paper))
            except InvalidPaper as exc:
                outcome.dead.append((record, exc.reason))
        messages = [dead_letter_message(self.settings.kafka.dlq_topic, record, reason) for record, reason in outcome.dead]

        if papers:
            started = time.monotonic()
            predictions = self.engine.predict(papers)
            elapsed = time.monotonic() - started
            metrics.TAG_BATCH_SECONDS.observe(elapsed)
            metrics.TAG_BATCH_SIZE.observe(len(papers))
            per_paper_ms = elapsed * 1000 / len(papers)
            outcome.tagged = [
                TagResult(
                    arxiv_id=p.arxiv_id,
                    topic=pred.topic,
                    adapter_version=self.engine.adapter_version,
                    model=self.engine.model_name,
                    latency_ms=round(per_paper_ms, 2),
                    confidence=None if pred.confidence is None else round(pred.confidence, 4),
                )
                for p, pred in zip(papers, predictions)
            ]
            if not self._save(list(zip(papers, outcome.tagged))):
                return outcome  # stopping while the store is down: no commit, the batch replays
            messages += [Message(self.settings.kafka.tagged_topic, r.to_bytes(), key=r.arxiv_id) for r in outcome.tagged]

        if not self.publisher.publish(messages, self.stopping):
            return outcome  # stopping while the broker is down: no commit, the batch replays
        outcome.committed = self._commit(records)

        for r in outcome.tagged:
            metrics.PAPERS_TAGGED.labels(r.adapter_version).inc()
            if r.confidence is not None:
                metrics.TAG_CONFIDENCE.labels(r.adapter_version).observe(r.confidence)
        for _, reason in outcome.dead:
            metrics.PAPERS_DEAD_LETTERED.labels(reason_kind(reason)).inc()
        if log.isEnabledFor(logging.DEBUG):  # one line per paper, to follow it across services
            for r in outcome.tagged:
                log.debug("tagged %s: %s", r.arxiv_id, r.topic,
                          extra={"arxiv_id": r.arxiv_id, "adapter_version": r.adapter_version, "topic": r.topic})
        log.info(
            "batch done: %d tagged, %d dead-lettered, adapter %s",
            len(outcome.tagged), len(outcome.dead), self.engine.adapter_version,
            extra={"adapter_version": self.engine.adapter_version, "tagged": len(outcome.tagged),
                   "dead_lettered": len(outcome.dead), "committed": outcome.committed},
        )
        return outcome

    def _save(self, tagged: list[tuple[Paper, TagResult]]) -> bool:
        """Write to the store, backing off while it is unavailable. False if asked to stop."""

        def save() -> bool:
            self.store.save_tagged(tagged)
            if self.topic_index:
                self.topic_index.add(tagged)
            return True

        return bool(with_store_retries(save, self.stopping, self.backoff, what="store write"))

    def _commit(self, records: list[ConsumerRecord]) -> bool:
        try:
            self.consumer.commit(batch_offsets(records))
            return True
        except CommitFailedError:
            # The group rebalanced while we worked: the new owner replays these records and
            # the store's upserts absorb the repeat.
            log.warning("commit refused after a rebalance; the batch will be replayed")
            return False
        except KafkaError as exc:
            # The coordinator is gone (broker restart): a later commit covers these offsets,
            # or the batch is replayed; either way the store holds it once.
            log.warning("commit failed (%s); the batch may be replayed", exc.__class__.__name__)
            return False
