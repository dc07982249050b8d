"""The labeler: a consumer-group worker on ``papers`` (or, for the confidence policy, on
``papers.tagged``) that sends the sampled share to the teacher, stores its labels and
publishes them on ``labels``, then commits.

A teacher outage loses no sampled paper: what the teacher cannot answer is parked in the
store and offered to it again later, with growing back-off, while the stream moves on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from topictag import metrics
from topictag.backoff import Backoff
from topictag.bus.batching import batch_offsets, poll_batch
from topictag.bus.publish import Message, ReliablePublisher
from topictag.labeler.sampling import SamplingPolicy
from topictag.schemas import InvalidPaper, Paper, TagResult, decode_paper
from topictag.settings import Settings
from topictag.store.models import TeacherLabel
from topictag.store.repository import Store
from topictag.store.retry import with_store_retries
from topictag.teacher import Failure, Teacher

log = logging.getLogger(__name__)

_PARK_BACKOFF_MAX_S = 3600.0


@dataclass
class LabelOutcome:
    sampled: int = 0
    labelled: list[str] = field(default_factory=list)
    unknown: int = 0
    parked: list[str] = field(default_factory=list)
    invalid: int = 0


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
        self.consumer = consumer
        self.publisher = ReliablePublisher(settings.kafka, producer)  # survives a broker restart
        self.store_backoff = Backoff(settings.labeler.retry_backoff_s, settings.labeler.retry_backoff_max_s)
        self.policy = policy
        self.stopping = threading.Event()
        self._next_parked_check = 0.0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        cfg = self.settings.labeler
        retrying = {"stopping": self.stopping, "backoff": self.store_backoff}
        while not self.stopping.is_set():
            if time.monotonic() >= self._next_parked_check:
                with_store_retries(self.retry_parked, what="retrying parked papers", **retrying)
                self._next_parked_check = time.monotonic() + cfg.parked_retry_s
            records = poll_batch(self.consumer, cfg.batch_size, cfg.max_wait_ms, self.stopping)
            if records:
                # A batch is idempotent (labels already stored are not asked for again, parking
                # is an upsert): while the store is down it is held and processed again.
                with_store_retries(lambda: self.process(records), what="labelling a batch", **retrying)

    def process(self, records: list[ConsumerRecord]) -> LabelOutcome:
        outcome = LabelOutcome()
        if self.policy.reads_tagged:
            papers = self._sampled_tagged(records, outcome)
        else:
            papers = self._sampled_new(records, outcome)
        metrics.LABELER_INVALID.inc(outcome.invalid)
        # A replayed batch must not pay the teacher twice.
        done = self.store.labelled_ids(list(papers), self.teacher.model)
        todo = [p for i, p in papers.items() if i not in done]
        outcome.sampled = len(todo)
        metrics.PAPERS_SAMPLED.inc(len(todo))
        if not self._label(todo, outcome, attempts={}):
            return outcome  # stopping before the labels were published: no commit, the batch replays
        try:
            self.consumer.commit(batch_offsets(records))
        except CommitFailedError:
            log.warning("commit refused after a rebalance; the batch will be replayed")
        except KafkaError as exc:
            log.warning("commit failed (%s); the batch may be replayed", exc.__class__.__name__)
        if todo:
            log.info("batch done: %d sampled, %d labelled, %d unknown to the teacher, %d parked",
                     outcome.sampled, len(outcome.labelled), outcome.unknown, len(outcome.parked),
                     extra={"teacher_model": self.teacher.model, "sampled": outcome.sampled,
                            "labelled": len(outcome.labelled), "unknown": outcome.unknown, "parked": len(outcome.parked)})
        return outcome

    def _sampled_new(self, records: list[ConsumerRecord], outcome: LabelOutcome) -> dict[str, Paper]:
        papers: dict[str, Paper] = {}
        for record in records:
            try:
                paper = decode_paper(record.value, self.settings.paper)
            except InvalidPaper:
                outcome.invalid += 1  # the tagger dead-letters it; nothing for the teacher
                continue
            if self.policy.wants(paper.arxiv_id):
                papers[paper.arxiv_id] = paper
        return papers

    def _sampled_tagged(self, records: list[ConsumerRecord], outcome: LabelOutcome) -> dict[str, Paper]:
        """Judge tag results by the student's confidence; the sampled papers' text comes from
        the store, where the tagger wrote it before publishing the result."""
        wanted: list[str] = []
        for record in records:
            try:
                result = TagResult.model_validate_json(record.value)
            except ValidationError as exc:
                outcome.invalid += 1
                log.warning("unreadable tag result at %s[%d]@%d: %s", record.topic, record.partition,
                            record.offset, exc.errors()[0]["msg"])
                continue
            if self.policy.wants(result.arxiv_id, result.confidence):
                wanted.append(result.arxiv_id)
        papers = {p.arxiv_id: p for p in self.store.papers_to_label(wanted)}
        missing = [i for i in wanted if i not in papers]
        if missing:  # only if papers were deleted after tagging; nothing to send the teacher
            log.warning("%d sampled papers are not in the store: %s", len(missing), ", ".join(missing[:5]))
        return papers

    def retry_parked(self, limit: int = 256) -> LabelOutcome:
        """Offer parked papers whose back-off has passed to the teacher again."""
        outcome = LabelOutcome()
        due = self.store.due_parked(datetime.now(timezone.utc), limit)
        if due:
            papers = [Paper.model_validate_json(p.payload) for p in due]
            self._label(papers, outcome, attempts={p.arxiv_id: p.attempts for p in due})
            log.info("parked papers retried: %d labelled, %d still parked", len(outcome.labelled), len(outcome.parked))
        return outcome

    def _label(self, papers: list[Paper], outcome: LabelOutcome, attempts: Mapping[str, int]) -> bool:
        """Ask the teacher; store and publish its labels; park what it could not answer.
        ``attempts``: earlier failed attempts of parked papers. False if asked to stop
        before the labels were published."""
        if not papers:
            return True
        answers = self.teacher.label(papers)
        now = datetime.now(timezone.utc)
        labels: list[TeacherLabel] = []
        resolved: list[str] = []
        for paper, answer in zip(papers, answers):
            if isinstance(answer, Failure):
                tries = attempts.get(paper.arxiv_id, 0) + 1
                retry_at = now + park_backoff(self.settings.labeler.parked_retry_s, tries)
                self.store.park(paper, answer.reason, retry_at, attempts=tries)
                metrics.PAPERS_PARKED.inc()
                log.debug("parked %s (attempt %d): %s", paper.arxiv_id, tries, answer.reason,
                          extra={"arxiv_id": paper.arxiv_id, "attempts": tries, "retry_at": retry_at.isoformat()})
                outcome.parked.append(paper.arxiv_id)
                continue
            resolved.append(paper.arxiv_id)
            if answer is None:
                outcome.unknown += 1
                continue
            labels.append(TeacherLabel(arxiv_id=paper.arxiv_id, abstract=paper.abstract, title=paper.title,
                                       topic=answer, teacher_model=self.teacher.model, labelled_at=now))
        self.store.save_teacher_labels(labels)
        # Also covers a fresh copy of a parked paper (a replay after a crash): it is settled now.
        self.store.unpark(resolved)
        messages = [Message(self.settings.kafka.labels_topic, label_message(label), key=label.arxiv_id) for label in labels]
        if not self.publisher.publish(messages, self.stopping):
            return False
        metrics.TEACHER_LABELS.labels(self.teacher.model).inc(len(labels))
        if log.isEnabledFor(logging.DEBUG):  # one line per paper, to follow it across services
            for label in labels:
                log.debug("labelled %s: %s", label.arxiv_id, label.topic,
                          extra={"arxiv_id": label.arxiv_id, "teacher_model": label.teacher_model,
                                 "topic": label.topic})
        outcome.labelled += [label.arxiv_id for label in labels]
        return True
