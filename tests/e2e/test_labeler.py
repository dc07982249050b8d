"""The labeler on the real broker and store: deterministic sampling, the recorded teacher,
exactly-once labels, and a teacher outage that parks papers instead of losing them."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest
from kafka import TopicPartition
from prometheus_client import REGISTRY

from tests.conftest import fresh_store, make_settings
from tests.e2e.test_stream import drain, wait_until
from topictag.bus.embedded import free_port
from topictag.bus.kafka import ensure_topics, group_lag, high_water_marks, make_consumer, make_producer
from topictag.ingest import publish_records
from topictag.labeler.sampling import UniformSampler, create_policy, labeler_topic
from topictag.labeler.worker import LabelerWorker
from topictag.schemas import Paper
from topictag.settings import KafkaSettings, LabelerSettings, Settings, StoreSettings, TeacherSettings
from topictag.store.models import TeacherLabel
from topictag.store import Store, open_store
from topictag.teacher import Answer, Teacher
from topictag.teacher.openai import OpenAITeacher
from topictag.teacher.recorded import RecordedTeacher

RATE = 0.5
MALFORMED = [b"{not json", json.dumps({"arxiv_id": "bad-1", "abstract": ""}).encode()]


@pytest.fixture
def dev_papers(teacher_labels) -> list[dict]:
    """Papers the recorded teacher knows (rows of the dev labels file) and some it does not."""
    dev = teacher_labels.head(60)
    known = [{"arxiv_id": f"dev-{r}", "abstract": a, "categories": "cs.LG"} for r, a in zip(dev["row"], dev["abstract"])]
    unknown = [{"arxiv_id": f"new-{i}", "abstract": f"A paper nobody labelled, number {i}."} for i in range(20)]
    return known + unknown


class AskedTeacher:
    """A real teacher that also remembers which papers it was asked about."""

    def __init__(self, teacher: Teacher):
        self.teacher, self.model = teacher, teacher.model
        self.asked: Counter[str] = Counter()

    def label(self, papers: Sequence[Paper]) -> list[Answer]:
        self.asked.update(p.arxiv_id for p in papers)
        return self.teacher.label(papers)

    def close(self) -> None:
        self.teacher.close()


class Labeler:
    """A labeler worker in a thread, as `topictag labeler` runs it."""

    def __init__(self, settings: Settings, teacher: Teacher, store: Store):
        kafka = settings.kafka
        self.consumer = make_consumer(kafka, settings.labeler.group_id, labeler_topic(settings))
        self.producer = make_producer(kafka)
        self.worker = LabelerWorker(settings, teacher, store, self.consumer, self.producer,
                                    create_policy(settings.labeler))
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.worker.stop()
        self.thread.join(60)
        self.consumer.close(autocommit=False)
        self.worker.publisher.close()


def settings_for(tmp_path, kafka: KafkaSettings, bundle) -> Settings:
    return make_settings(
        tmp_path,
        kafka=kafka.model_copy(update={"labels_topic": f"labels-{uuid.uuid4().hex[:8]}"}),
        labeler=LabelerSettings(group_id=f"labeler-{uuid.uuid4().hex[:6]}", sample_rate=RATE, batch_size=16,
                                max_wait_ms=200, parked_retry_s=0.5),
        teacher=TeacherSettings(labels_file=bundle / "teacher_labels.parquet"),
    )


def publish(kafka: KafkaSettings, rows: list[dict], raw: Sequence[bytes] = ()) -> dict[TopicPartition, int]:
    """Publish ``rows`` (and ``raw`` messages); the end offset of each partition written."""
    producer = make_producer(kafka)
    ends = publish_records(producer, kafka.papers_topic, rows).end_offsets
    for value in raw:
        meta = producer.send(kafka.papers_topic, value=value).get(timeout=30)
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    producer.close()
    return ends


def read_labels_topic(kafka: KafkaSettings, want: int) -> list[tuple[str, dict]]:
    consumer = make_consumer(kafka, f"check-{uuid.uuid4().hex[:6]}", kafka.labels_topic)
    records = drain(consumer, want, timeout=15)
    records += drain(consumer, 1, timeout=1)  # anything beyond what was expected
    consumer.close()
    return [(r.key.decode(), json.loads(r.value)) for r in records]


def sampled_ids(rows: list[dict]) -> set[str]:
    sampler = UniformSampler(RATE)
    return {r["arxiv_id"] for r in rows if sampler.wants(r["arxiv_id"])}


def invalid_count() -> float:
    return REGISTRY.get_sample_value("topictag_labeler_invalid_total") or 0.0


def test_sampled_papers_get_teacher_labels_exactly_once(tmp_path, kafka, bundle, dev_papers):
    settings = settings_for(tmp_path, kafka, bundle)
    ensure_topics(settings.kafka)
    store = open_store(settings.store_url)
    expected = {i for i in sampled_ids(dev_papers) if i.startswith("dev-")}
    assert 15 < len(expected) < 45  # about half of the 60 the teacher knows
    assert len(sampled_ids(dev_papers)) > len(expected)  # some sampled papers it does not know

    invalid_before = invalid_count()
    first = publish(settings.kafka, dev_papers, MALFORMED)
    again = publish(settings.kafka, dev_papers[:30])  # published twice: no second label, no second question
    ends = {tp: max(first.get(tp, 0), again.get(tp, 0)) for tp in first.keys() | again.keys()}
    teacher = AskedTeacher(RecordedTeacher(settings.teacher_labels_file, settings.teacher.model))
    with Labeler(settings, teacher, store):
        wait_until(lambda: group_lag(settings.kafka, settings.labeler.group_id, ends) == 0, 60, "commits")
    assert store.teacher_labels.count() == len(expected)  # unknown papers are skipped, never invented
    assert store.teacher_labels.labelled_ids(sorted(expected), teacher.model) == expected
    assert {i for i, n in teacher.asked.items() if i in expected and n == 1} == expected
    assert invalid_count() == invalid_before + len(MALFORMED)

    published = read_labels_topic(settings.kafka, len(expected))
    assert sorted(key for key, _ in published) == sorted(expected)
    papers = [Paper(**r) for r in dev_papers if r["arxiv_id"] in expected]
    answers = dict(zip((p.arxiv_id for p in papers), teacher.teacher.label(papers)))
    for key, message in published:
        assert message["arxiv_id"] == key and message["topic"] == answers[key]
        assert message["teacher_model"] == settings.teacher.model
        assert datetime.fromisoformat(message["labelled_at"]).tzinfo is not None

    # Replaying the whole topic (a new group) neither asks the teacher again nor adds a label.
    group = f"replay-{uuid.uuid4().hex[:6]}"
    replay = settings.model_copy(update={"labeler": settings.labeler.model_copy(update={"group_id": group})})
    teacher.asked.clear()
    with Labeler(replay, teacher, store):
        wait_until(lambda: group_lag(settings.kafka, group, ends) == 0, 60, "replay commits")
    assert not expected & set(teacher.asked)
    assert store.teacher_labels.count() == len(expected)
    assert len(read_labels_topic(settings.kafka, len(expected))) == len(expected)
    store.close()


def test_confidence_policy_sends_the_teacher_what_the_student_was_least_sure_of(
    tmp_path, kafka, bundle, dev_papers, student_engine
):
    """The whole chain: the tagger tags papers with the real student and publishes each
    topic with its confidence; the labeler, reading those results, asks the teacher about
    the least sure share and labels them from the stored paper text."""
    from tests.e2e.test_stream import Tagger

    base = settings_for(tmp_path, kafka, bundle)
    settings = base.model_copy(update={
        "labeler": base.labeler.model_copy(update={"policy": "confidence", "sample_rate": 0.25, "confidence_warmup": 0}),
        "tagger": base.tagger.model_copy(update={"group_id": f"tagger-{uuid.uuid4().hex[:6]}", "batch_size": 8,
                                                 "max_wait_ms": 200}),
    })
    ensure_topics(settings.kafka)
    store = open_store(settings.store_url)
    known = [p for p in dev_papers if p["arxiv_id"].startswith("dev-")]
    publish(settings.kafka, known)
    teacher = AskedTeacher(RecordedTeacher(settings.teacher_labels_file, settings.teacher.model))
    with Tagger(settings, student_engine, store) as tagger, Labeler(settings, teacher, store):
        wait_until(lambda: sum(len(b.tagged) for b in tagger.batches) == len(known), 240, "tagging")
        confidence = {r.arxiv_id: r.confidence for b in tagger.batches for r in b.tagged}
        ends = high_water_marks(settings.kafka, settings.kafka.tagged_topic)
        wait_until(lambda: group_lag(settings.kafka, settings.labeler.group_id, ends) == 0, 120,
                   "the labeler to commit every tag result")
    assert all(c is not None and c < 0 for c in confidence.values())
    asked = set(teacher.asked)
    # About a quarter of 60: the lowest quarter of a window that grows with the stream, so the
    # order the results arrive in (partitions, batches) moves the count (7 seen on one run).
    assert 5 <= len(asked) <= 25, len(asked)
    ranked = sorted(confidence, key=confidence.get)  # least sure first
    mean_rank = sum(ranked.index(i) for i in asked) / len(asked) / len(ranked)
    assert mean_rank < 0.3, mean_rank  # a uniform sample sits near 0.5
    # The recorded teacher knows a paper by its abstract: a label for each asked paper means
    # the labeler sent the paper's text as stored.
    assert store.teacher_labels.labelled_ids(sorted(asked), teacher.model) == asked
    assert sorted(key for key, _ in read_labels_topic(settings.kafka, len(asked))) == sorted(asked)
    store.close()


def test_teacher_outage_parks_papers_and_resumes(tmp_path, kafka, bundle, dev_papers):
    settings = settings_for(tmp_path, kafka, bundle)
    ensure_topics(settings.kafka)
    store = open_store(settings.store_url)
    known = [p for p in dev_papers if p["arxiv_id"].startswith("dev-")][:20]
    sampled = sampled_ids(known)
    ends = publish(settings.kafka, known)

    # Nothing listens on that port: every call fails after its retries.
    down = OpenAITeacher(TeacherSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1,
                                         backoff_s=0.01, breaker_failures=100, timeout_s=0.5))
    with Labeler(settings, down, store):
        wait_until(lambda: store.parked.count() == len(sampled), 60, "sampled papers parked")
        wait_until(lambda: group_lag(settings.kafka, settings.labeler.group_id, ends) == 0, 30, "commits")
    down.close()
    parked = store.parked.due(datetime.now(timezone.utc) + timedelta(days=1), 100)
    assert {p.arxiv_id for p in parked} == sampled
    assert all(p.attempts >= 1 and p.reason.startswith("unreachable") for p in parked)
    assert store.teacher_labels.count() == 0

    # The teacher is back: the parked papers are labelled on the parked retry (the offsets
    # were committed, so nothing else would bring them back).
    recorded = RecordedTeacher(settings.teacher_labels_file, settings.teacher.model)
    with Labeler(settings, recorded, store):
        wait_until(lambda: store.parked.count() == 0, 30, "parked papers labelled")
    assert store.teacher_labels.labelled_ids(sorted(sampled), recorded.model) == sampled
    assert sorted(key for key, _ in read_labels_topic(settings.kafka, len(sampled))) == sorted(sampled)
    store.close()


def test_store_keeps_one_label_per_paper_and_teacher_and_parks_papers(store):
    now = datetime.now(timezone.utc)

    def label(arxiv_id: str, topic: str, model: str = "llama-70b") -> TeacherLabel:
        return TeacherLabel(arxiv_id=arxiv_id, abstract="An abstract.", topic=topic, teacher_model=model, labelled_at=now)

    store.teacher_labels.save([label("a", "Old Topic"), label("b", "Graph Learning")])
    store.teacher_labels.save([label("a", "New Topic"), label("a", "Another Teacher's Topic", "gpt-4")])
    assert store.teacher_labels.count() == 3
    assert store.teacher_labels.labelled_ids(["a", "b", "c"], "llama-70b") == {"a", "b"}
    assert store.teacher_labels.labelled_ids(["a", "b"], "gpt-4") == {"a"}

    paper = Paper(arxiv_id="p", title="T", abstract="Parked abstract.")
    store.parked.park(paper, "http 503", now + timedelta(minutes=1), attempts=1)
    store.parked.park(paper, "timeout", now + timedelta(minutes=2), attempts=2)  # parked again: one row, updated
    store.parked.park(Paper(arxiv_id="q", abstract="Due now."), "http 500", now - timedelta(seconds=1))
    assert store.parked.count() == 2
    assert [p.arxiv_id for p in store.parked.due(now, 10)] == ["q"]
    due = {p.arxiv_id: p for p in store.parked.due(now + timedelta(minutes=3), 10)}
    assert set(due) == {"p", "q"} and (due["p"].reason, due["p"].attempts) == ("timeout", 2)
    assert Paper.model_validate_json(due["p"].payload) == paper
    store.parked.unpark(["p", "q"])
    assert store.parked.count() == 0


def test_store_outage_holds_the_batch_and_resumes(tmp_path, kafka, bundle, dev_papers, postgres_url):
    """Fault: the database becomes unreachable while the labeler runs. Must hold: the worker
    lives on, commits no offset while the store is away, and once it returns every sampled
    paper has exactly one label."""
    from tests.reliability.test_faults import TcpProxy

    proxy = TcpProxy(5432)
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    base = settings_for(tmp_path, kafka, bundle)
    settings = base.model_copy(update={
        "store": StoreSettings(url=url),
        "labeler": base.labeler.model_copy(update={"retry_backoff_s": 0.2, "retry_backoff_max_s": 1.0}),
    })
    ensure_topics(settings.kafka)
    store = fresh_store(url)
    checker = open_store(postgres_url)  # the test's own view, not through the proxy
    known = [p for p in dev_papers if p["arxiv_id"].startswith("dev-")][:40]
    first, second = known[:20], known[20:]
    retries_before = REGISTRY.get_sample_value("topictag_store_retries_total") or 0.0
    teacher = RecordedTeacher(settings.teacher_labels_file, settings.teacher.model)
    try:
        with Labeler(settings, teacher, store) as labeler:
            ends = publish(settings.kafka, first)
            wait_until(lambda: group_lag(settings.kafka, settings.labeler.group_id, ends) == 0, 60, "the first commits")
            assert checker.teacher_labels.count() == len(sampled_ids(first))

            proxy.cut()
            more = publish(settings.kafka, second)
            ends = {tp: max(ends.get(tp, 0), more.get(tp, 0)) for tp in ends.keys() | more.keys()}
            wait_until(lambda: (REGISTRY.get_sample_value("topictag_store_retries_total") or 0.0) > retries_before,
                       30, "a store retry")
            assert labeler.thread.is_alive()
            assert group_lag(settings.kafka, settings.labeler.group_id, ends) > 0  # nothing committed meanwhile
            assert checker.teacher_labels.count() == len(sampled_ids(first))

            proxy.restore()
            wait_until(lambda: group_lag(settings.kafka, settings.labeler.group_id, ends) == 0, 90, "commits after the outage")
        expected = sampled_ids(known)
        assert checker.teacher_labels.count() == len(expected)
        assert checker.teacher_labels.labelled_ids(sorted(expected), teacher.model) == expected
    finally:
        proxy.close()
        store.close()
        checker.close()
