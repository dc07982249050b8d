"""Papers through the real pipeline: embedded broker -> tagger (real SmolLM2 on vLLM) ->
store -> gateway, with malformed messages among them."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from kafka import TopicPartition

from tests.conftest import make_settings
from topictag.bus.dead_letter import dead_letter_reason
from topictag.bus.kafka import ensure_topics, group_lag, make_consumer, make_producer
from topictag.gateway.app import create_app
from topictag.ingest import publish_records
from topictag.settings import TaggerSettings
from topictag.store import open_store
from topictag.student.normalise import MAX_TOPIC_CHARS
from topictag.tagger.worker import TaggerWorker

pytestmark = pytest.mark.model

MALFORMED = [
    (b"{this is not json", "invalid JSON"),
    (json.dumps({"arxiv_id": "bad.00001", "title": "No abstract"}).encode(), "abstract is required"),
    (json.dumps({"arxiv_id": "bad.00002", "abstract": ""}).encode(), "abstract must not be empty"),
    (b"\xc3\x28 not utf-8", "not UTF-8"),
    (json.dumps({"arxiv_id": "bad.00003", "abstract": "x" * 20_000}).encode(), "over the 10000 limit"),
]


def drain(consumer, want: int, timeout: float = 60.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += records
    return got


class Tagger:
    """A tagger worker over the session's engine, in a thread, as `topictag tagger` runs it."""

    def __init__(self, settings, engine, store):
        kafka = settings.kafka
        self.consumer = make_consumer(kafka, settings.tagger.group_id, kafka.papers_topic)
        self.producer = make_producer(kafka)
        self.batches = []
        self.worker = TaggerWorker(settings, engine, store, self.consumer, self.producer, on_batch=self.batches.append)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def stop(self):
        self.worker.stop()
        self.thread.join(120)
        assert not self.thread.is_alive()
        self.consumer.close(autocommit=False)
        self.worker.publisher.close()

    def __exit__(self, *exc):
        if self.thread.is_alive():
            self.stop()


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def pipeline(tmp_path, kafka, student_engine):
    settings = make_settings(tmp_path, kafka=kafka, tagger=TaggerSettings(group_id=f"tagger-{uuid.uuid4().hex[:6]}", batch_size=8, max_wait_ms=200))
    ensure_topics(kafka)
    store = open_store(settings.store_url)
    yield settings, store
    store.close()


def test_papers_are_tagged_exactly_once_and_bad_ones_dead_lettered(pipeline, student_engine, sample_papers):
    settings, store = pipeline
    kafka = settings.kafka
    papers = sample_papers[:24]
    producer = make_producer(kafka)
    report = publish_records(producer, kafka.papers_topic, papers)
    bad_offsets = {}
    for value, _ in MALFORMED:
        meta = producer.send(kafka.papers_topic, value=value).get(timeout=10)
        tp = TopicPartition(meta.topic, meta.partition)
        bad_offsets[tp] = max(bad_offsets.get(tp, 0), meta.offset + 1)
    producer.flush()
    producer.close()
    ends = {tp: max(report.end_offsets.get(tp, 0), bad_offsets.get(tp, 0)) for tp in report.end_offsets | bad_offsets}

    with Tagger(settings, student_engine, store) as tagger:
        wait_until(lambda: store.papers.count_tagged() >= len(papers) and sum(len(b.dead) for b in tagger.batches) >= len(MALFORMED),
                   180, "all papers tagged")
        wait_until(lambda: group_lag(kafka, settings.tagger.group_id, ends) == 0, 30, "offsets committed")

    ids = [p["arxiv_id"] for p in papers]
    assert store.papers.count_tagged() == len(papers)
    assert store.papers.count_assignments() == len(papers)  # one topic per paper: nothing tagged twice

    results_consumer = make_consumer(kafka, f"check-{uuid.uuid4().hex[:6]}", kafka.tagged_topic, kafka.dlq_topic)
    got = drain(results_consumer, len(papers) + len(MALFORMED))
    results_consumer.close()
    tagged = [json.loads(r.value) for r in got if r.topic == kafka.tagged_topic]
    dead = [r for r in got if r.topic == kafka.dlq_topic]
    assert sorted(t["arxiv_id"] for t in tagged) == sorted(ids)
    for t in tagged:
        assert t["adapter_version"] == "base" and t["model"] == "SmolLM2-135M-Instruct"
        assert t["topic"] and "\n" not in t["topic"] and len(t["topic"]) <= MAX_TOPIC_CHARS

    # Each dead letter carries the original bytes and the reason.
    by_value = {r.value: dead_letter_reason(r.headers) for r in dead}
    assert len(dead) == len(MALFORMED)
    for value, reason in MALFORMED:
        assert reason in by_value[value]["reason"]
        assert by_value[value]["topic"] == kafka.papers_topic

    with TestClient(create_app(settings, store=store)) as client:
        for t in tagged:
            body = client.get(f"/v1/papers/{t['arxiv_id']}").json()
            assert body["topic"] == t["topic"]
            assert body["history"] == [{"adapter_version": "base", "topic": t["topic"], "tagged_at": body["history"][0]["tagged_at"]}]
        listed = client.get("/v1/papers", params={"limit": 100}).json()["items"]
        assert sorted(p["arxiv_id"] for p in listed) == sorted(ids)


def test_stopped_tagger_resumes_without_gaps_or_duplicates(pipeline, student_engine, sample_papers):
    settings, store = pipeline
    kafka = settings.kafka
    papers = sample_papers[100:124]
    producer = make_producer(kafka)
    report = publish_records(producer, kafka.papers_topic, papers)
    producer.close()

    with Tagger(settings, student_engine, store) as first:
        wait_until(lambda: len(first.batches) >= 1, 120, "a first batch")
        first.stop()  # mid-stream: most papers are still in the topic
    done_before = store.papers.count_tagged()
    assert 0 < done_before < len(papers)

    with Tagger(settings, student_engine, store):
        wait_until(lambda: store.papers.count_tagged() == len(papers), 180, "the rest tagged")
        wait_until(lambda: group_lag(kafka, settings.tagger.group_id, report.end_offsets) == 0, 30, "offsets committed")

    assert store.papers.count_assignments() == len(papers)
    consumer = make_consumer(kafka, f"check-{uuid.uuid4().hex[:6]}", kafka.tagged_topic)
    results = [json.loads(r.value)["arxiv_id"] for r in drain(consumer, len(papers))]
    consumer.close()
    # A graceful stop commits what it finished: every paper is on papers.tagged once.
    assert sorted(results) == sorted(p["arxiv_id"] for p in papers)
