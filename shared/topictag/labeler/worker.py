"""The labeler: a consumer-group worker on ``papers`` (or, for the confidence policy, on
``papers.tagged``), as steps over the consumer kit: decode, sample a share, ask the teacher
and store its labels, publish them on ``labels``, then commit.

A teacher outage loses no sampled paper: what the teacher cannot answer is parked in the
store and offered to it again later, with growing back-off, while the stream moves on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from kafka import KafkaConsumer, KafkaProducer
from pydantic import ValidationError

from topictag import metrics
from topictag.backoff import Backoff
from topictag.bus.publish import Message, ReliablePublisher
from topictag.consumer import (
    Batch,
    Commit,
    Decode,
    Persist,
    Pipeline,
    Produce,
    kafka_source,
    run,
)
from topictag.labeler.sampling import SamplingPolicy
from topictag.schemas import InvalidPaper, Paper, TagResult, decode_paper
from topictag.settings import Settings
from topictag.store import Store
from topictag.store.models import TeacherLabel
from topictag.store.retry import with_store_retries
from topictag.teacher import Answer, Failure, Teacher

log = logging.getLogger(__name__)

_PARK_BACKOFF_MAX_S = 3600.0

# What the teacher said about each paper asked: a topic, None (unknown to it) or a Failure.
Answers = list[tuple[Paper, Answer]]


def park_backoff(first_s: float, attempts: int) -> timedelta:
    """The back-off rule's ceiling after ``attempts`` failed attempts: doubling, at most an
    hour. No jitter here: parked papers are offered again only every ``parked_retry_s``, in
    one batch, so their retries are spread already, and a paper must wait longer after each
    failure."""
    return timedelta(seconds=Backoff(first_s, _PARK_BACKOFF_MAX_S).ceiling(attempts))


def label_message(label: TeacherLabel) -> bytes:
    return json.dumps({
        "arxiv_id": label.arxiv_id,
        "topic": label.topic,
        "teacher_model": label.teacher_model,
        "labelled_at": label.labelled_at.isoformat(),
    }).encode()


class LabelerWorker:
    def __init__(
        self,
        settings: Settings,
        teacher: Teacher,
        store: Store,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        policy: SamplingPolicy,
    ):
        self.settings = settings
        self.teacher = teacher
        self.store = store
        self.policy = policy
        self.stopping = threading.Event()
        self.publisher = ReliablePublisher(settings.kafka, producer)  # survives a broker restart
        cfg = settings.labeler
        self.store_backoff = Backoff(cfg.retry_backoff_s, cfg.retry_backoff_max_s)
        self._next_parked_check = 0.0
        decode: Decode[ValidationError] | Decode[InvalidPaper]
        if policy.reads_tagged:
            decode = Decode(TagResult.model_validate_json, ValidationError, reason=lambda exc: exc.errors()[0]["msg"])
        else:  # a paper the tagger dead-letters: nothing for the teacher
            decode = Decode(lambda value: decode_paper(value, settings.paper), InvalidPaper,
                            reason=lambda exc: exc.reason)
        self.source = kafka_source(consumer, cfg.batch_size, cfg.max_wait_ms)
        self.steps = Pipeline([
            decode,
            self._sample,
            # Idempotent (labels already stored are not asked for again, parking is an upsert):
            # while the store is down the batch is held and labelled again.
            Persist(self._label_batch, self.stopping, self.store_backoff, what="labelling a batch"),
            Produce(self.publisher, self.stopping),
            Commit(consumer),
            self._report,
        ])

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        run(self.source, self.steps, self.stopping, between_batches=self._retry_parked_when_due,
            heartbeat=self.settings.paths.heartbeat_file)

    def _sample(self, batch: Batch) -> bool:
        """Keep the papers (or tag results) the policy wants, once each."""
        wanted = {}
        for item in batch.items:  # a tag result carries the student's confidence; a paper none
            if self.policy.wants(item.arxiv_id, getattr(item, "confidence", None)):
                wanted[item.arxiv_id] = item
        batch.items = list(wanted.values())
        return True

    def _label_batch(self, batch: Batch) -> None:
        papers = self._papers(batch.items)
        # A replayed batch must not pay the teacher twice.
        done = self.store.teacher_labels.labelled_ids(list(papers), self.teacher.model)
        batch.results, batch.messages = self._label([p for i, p in papers.items() if i not in done], attempts={})

    def _papers(self, sampled: list[Paper] | list[TagResult]) -> dict[str, Paper]:
        if not self.policy.reads_tagged:  # the batch holds papers
            return {p.arxiv_id: p for p in cast(list[Paper], sampled)}
        # The text of a tagged paper comes from the store, written before its result was published.
        wanted = [r.arxiv_id for r in sampled]
        papers = {p.arxiv_id: p for p in self.store.papers.to_label(wanted)}
        missing = [i for i in wanted if i not in papers]
        if missing:  # only if papers were deleted after tagging; nothing to send the teacher
            log.warning("%d sampled papers are not in the store: %s", len(missing), ", ".join(missing[:5]))
        return papers

    def _report(self, batch: Batch) -> bool:
        metrics.LABELER_INVALID.inc(len(batch.dead))
        if self.policy.reads_tagged:
            for record, reason in batch.dead:
                log.warning("unreadable tag result at %s[%d]@%d: %s", record.topic, record.partition,
                            record.offset, reason)
        metrics.PAPERS_SAMPLED.inc(len(batch.results))
        labelled, unknown, parked = self._labels_published(batch.results)
        if batch.results:
            log.info("batch done: %d sampled, %d labelled, %d unknown to the teacher, %d parked",
                     len(batch.results), labelled, unknown, parked,
                     extra={"teacher_model": self.teacher.model, "sampled": len(batch.results),
                            "labelled": labelled, "unknown": unknown, "parked": parked})
        return True

    def _retry_parked_when_due(self) -> None:
        if time.monotonic() >= self._next_parked_check:
            with_store_retries(self.retry_parked, self.stopping, self.store_backoff, what="retrying parked papers")
            self._next_parked_check = time.monotonic() + self.settings.labeler.parked_retry_s

    def retry_parked(self, limit: int = 256) -> None:
        """Offer parked papers whose back-off has passed to the teacher again."""
        due = self.store.parked.due(datetime.now(UTC), limit)
        if not due:
            return
        papers = [Paper.model_validate_json(p.payload) for p in due]
        answers, messages = self._label(papers, attempts={p.arxiv_id: p.attempts for p in due})
        if self.publisher.publish(messages, self.stopping):
            labelled, _, parked = self._labels_published(answers)
            log.info("parked papers retried: %d labelled, %d still parked", labelled, parked)

    def _label(self, papers: Sequence[Paper], attempts: Mapping[str, int]) -> tuple[Answers, list[Message]]:
        """Ask the teacher; store its labels; park what it could not answer. ``attempts``:
        earlier failed attempts of parked papers. Returns the answers and the label messages."""
        if not papers:
            return [], []
        answers = list(zip(papers, self.teacher.label(papers)))
        now = datetime.now(UTC)
        labels: list[TeacherLabel] = []
        resolved: list[str] = []
        for paper, answer in answers:
            if isinstance(answer, Failure):
                self._park(paper, answer, attempts.get(paper.arxiv_id, 0) + 1)
                continue
            resolved.append(paper.arxiv_id)
            if answer is not None:
                labels.append(TeacherLabel(arxiv_id=paper.arxiv_id, abstract=paper.abstract, title=paper.title,
                                           topic=answer, teacher_model=self.teacher.model, labelled_at=now))
        self.store.teacher_labels.save(labels)
        # Also covers a fresh copy of a parked paper (a replay after a crash): it is settled now.
        self.store.parked.unpark(resolved)
        topic = self.settings.kafka.labels_topic
        return answers, [Message(topic, label_message(label), key=label.arxiv_id) for label in labels]

    def _park(self, paper: Paper, failure: Failure, tries: int) -> None:
        retry_at = datetime.now(UTC) + park_backoff(self.settings.labeler.parked_retry_s, tries)
        self.store.parked.park(paper, failure.reason, retry_at, attempts=tries)
        metrics.PAPERS_PARKED.inc()
        log.debug("parked %s (attempt %d): %s", paper.arxiv_id, tries, failure.reason,
                  extra={"arxiv_id": paper.arxiv_id, "attempts": tries, "retry_at": retry_at.isoformat()})

    def _labels_published(self, answers: Answers) -> tuple[int, int, int]:
        """Labels published (counted in metrics, logged per paper at DEBUG), papers unknown to
        the teacher, papers parked."""
        labels = [(paper, topic) for paper, topic in answers if isinstance(topic, str)]
        metrics.TEACHER_LABELS.labels(self.teacher.model).inc(len(labels))
        if log.isEnabledFor(logging.DEBUG):  # one line per paper, to follow it across services
            for paper, topic in labels:
                log.debug("labelled %s: %s", paper.arxiv_id, topic,
                          extra={"arxiv_id": paper.arxiv_id, "teacher_model": self.teacher.model, "topic": topic})
        unknown = sum(1 for _, answer in answers if answer is None)
        return len(labels), unknown, len(answers) - len(labels) - unknown
