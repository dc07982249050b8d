"""The tagger: a consumer-group worker on ``papers``, as steps over the consumer kit.

Each batch (up to ``batch_size`` papers or ``max_wait_ms``): decode the papers (malformed
messages to the DLQ, with the reason), tag them in one engine call, write results to the
store, publish them to ``papers.tagged`` with the dead letters, and only then commit the
batch's offsets. A crash anywhere before the commit replays the batch, and the store's
upserts make the replay harmless (at-least-once delivery, exactly-once rows). Adapters
switch between batches, so a batch is tagged by one adapter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from topictag import metrics
from topictag.adapters.events import ProductionAdapterWatch
from topictag.backoff import Backoff
from topictag.bus.publish import Message, ReliablePublisher
from topictag.consumer import (
    Batch,
    Commit,
    DeadLetter,
    Decode,
    Persist,
    Pipeline,
    Produce,
    kafka_source,
    run,
)
from topictag.schemas import InvalidPaper, TagResult, decode_paper
from topictag.settings import Settings
from topictag.store import Store
from topictag.student.engine import StudentEngine
from topictag.topics.index import TopicIndex

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
        self.on_batch = on_batch
        self.adapter_watch = adapter_watch
        self.topic_index = topic_index
        self.stopping = threading.Event()
        cfg, kafka = settings.tagger, settings.kafka
        backoff = Backoff(cfg.retry_backoff_s, cfg.retry_backoff_max_s)
        # Resends through a new producer after a broker failure: the worker outlives a broker restart.
        self.publisher = ReliablePublisher(kafka, producer, backoff=backoff)
        self.source = kafka_source(consumer, cfg.batch_size, cfg.max_wait_ms)
        self.steps = Pipeline([
            Decode(lambda value: decode_paper(value, settings.paper), InvalidPaper, reason=lambda exc: exc.reason),
            DeadLetter(kafka.dlq_topic),
            self._tag,
            Persist(self._save, self.stopping, backoff, what="store write"),
            Produce(self.publisher, self.stopping),
            Commit(consumer),
            self._report,
        ])

    def stop(self) -> None:
        self.stopping.set()

    def run(self, max_batches: int | None = None) -> None:
        """Tag until ``stop()`` (or ``max_batches`` non-empty batches)."""
        metrics.ADAPTER_IN_SERVICE.labels(self.engine.adapter_version).set(1)
        if self.adapter_watch:
            self.adapter_watch.sync()
        # self.process is looked up per batch: a test may wrap it while the worker runs.
        run(self.source, lambda records: self.process(records), self.stopping,
            between_batches=self._between_batches, on_batch=self.on_batch, max_batches=max_batches,
            heartbeat=self.settings.paths.heartbeat_file)

    def process(self, records: list[ConsumerRecord]) -> BatchOutcome:
        batch = self.steps(records)
        return BatchOutcome(batch.results, batch.dead, batch.committed)

    def _between_batches(self) -> None:
        if self.adapter_watch:
            self.adapter_watch.poll()

    def _tag(self, batch: Batch) -> bool:
        if not batch.items:
            return True
        started = time.monotonic()
        predictions = self.engine.predict(batch.items)
        elapsed = time.monotonic() - started
        metrics.TAG_BATCH_SECONDS.observe(elapsed)
        metrics.TAG_BATCH_SIZE.observe(len(batch.items))
        per_paper_ms = elapsed * 1000 / len(batch.items)
        batch.results = [
            TagResult(
                arxiv_id=p.arxiv_id,
                topic=pred.topic,
                adapter_version=self.engine.adapter_version,
                model=self.engine.model_name,
                latency_ms=round(per_paper_ms, 2),
                confidence=None if pred.confidence is None else round(pred.confidence, 4),
            )
            for p, pred in zip(batch.items, predictions)
        ]
        tagged_topic = self.settings.kafka.tagged_topic
        batch.messages += [Message(tagged_topic, r.to_bytes(), key=r.arxiv_id) for r in batch.results]
        return True

    def _save(self, batch: Batch) -> None:
        if not batch.results:
            return  # a batch of dead letters only: nothing for the store
        tagged = list(zip(batch.items, batch.results))
        self.store.papers.save_tagged(tagged)
        if self.topic_index:
            self.topic_index.add(tagged)

    def _report(self, batch: Batch) -> bool:
        for r in batch.results:
            metrics.PAPERS_TAGGED.labels(r.adapter_version).inc()
            if r.confidence is not None:
                metrics.TAG_CONFIDENCE.labels(r.adapter_version).observe(r.confidence)
        for _, reason in batch.dead:
            metrics.PAPERS_DEAD_LETTERED.labels(reason_kind(reason)).inc()
        if log.isEnabledFor(logging.DEBUG):  # one line per paper, to follow it across services
            for r in batch.results:
                log.debug("tagged %s: %s", r.arxiv_id, r.topic,
                          extra={"arxiv_id": r.arxiv_id, "adapter_version": r.adapter_version, "topic": r.topic})
        log.info(
            "batch done: %d tagged, %d dead-lettered, adapter %s",
            len(batch.results), len(batch.dead), self.engine.adapter_version,
            extra={"adapter_version": self.engine.adapter_version, "tagged": len(batch.results),
                   "dead_lettered": len(batch.dead), "committed": batch.committed},
        )
        return True
