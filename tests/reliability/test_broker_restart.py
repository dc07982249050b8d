"""Fault: the broker stops and comes back while a producer and a tagger run.

Must hold: the tagger reconnects and carries on without a restart or an operator; the
batch it had in hand when the broker went away is stored and published once the broker is
back; a producer whose messages were not acknowledged says which (PublishError), it never
drops them silently; every paper acknowledged after the restart is stored exactly once.

The embedded broker keeps its log in memory, so its restart is a fresh, empty broker on
the same address: topics, messages not yet consumed and committed offsets are gone. What
is tested is what the clients must do about a broker that goes away; what real Kafka adds
(durable, replicated logs and offsets) is in docs/guarantees.md.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from tests.conftest import make_settings
from tests.e2e.test_stream import Tagger, drain, wait_until
from topictag.bus.embedded import EmbeddedBroker, free_port
from topictag.bus.kafka import ensure_topics, group_lag, make_consumer, make_producer
from topictag.ingest import PublishError, publish_records, record_to_message
from topictag.settings import KafkaSettings, TaggerSettings
from topictag.store import open_store

pytestmark = pytest.mark.model

PARTITIONS = 4


def send_one_per_partition(producer, topic: str, rows: list[dict]) -> None:
    """Row i to partition i % PARTITIONS, acknowledged."""
    futures = []
    for i, row in enumerate(rows):
        key, value = record_to_message(row)
        futures.append(producer.send(topic, key=key, value=value, partition=i % PARTITIONS))
    producer.flush()
    for f in futures:
        f.get(timeout=30)


class HeldEngine:
    """The session's engine, but each call waits for the test's go: the broker can be
    stopped while a batch is certainly in the tagger's hands."""

    def __init__(self, engine):
        self.engine = engine
        self.predicting = threading.Event()
        self.go = threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def predict(self, papers):
        self.predicting.set()
        self.go.wait(60)
        return self.engine.predict(papers)


def test_broker_restart_clients_reconnect_and_nothing_is_dropped_silently(tmp_path, student_engine, sample_papers):
    port = free_port()
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "broker.log").start()
    run = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(bootstrap=broker.bootstrap, papers_topic=f"papers-{run}", tagged_topic=f"tagged-{run}",
                          dlq_topic=f"dlq-{run}", partitions=PARTITIONS)
    settings = make_settings(tmp_path, kafka=kafka, tagger=TaggerSettings(
        group_id=f"tagger-{run}", batch_size=8, max_wait_ms=2000, retry_backoff_s=0.2, retry_backoff_max_s=1.0))
    ensure_topics(kafka)
    store = open_store(settings.store_url)
    papers = sample_papers[1000:1016]
    before, during, after = papers[:8], papers[8:10], papers[10:]
    # Short delivery timeouts: a message the broker does not acknowledge fails in seconds.
    quick = dict(request_timeout_ms=2000, delivery_timeout_ms=4000, max_block_ms=3000)
    producer = make_producer(kafka, **quick)
    try:
        # Two papers on each partition (so each consumer position is past the start), all in
        # the topic before the tagger starts: its first batch holds all eight.
        send_one_per_partition(producer, kafka.papers_topic, before)
        engine = HeldEngine(student_engine)
        with Tagger(settings, engine, store) as tagger:
            # Kafka-python's idempotent producer can retry for its whole delivery timeout
            # against a broker that forgot it (UnknownProducerId); the worker starts over
            # with a new producer after this long (30 s by default).
            tagger.worker.publisher.send_timeout_s = 5
            assert engine.predicting.wait(60), "the tagger never took the batch"
            broker.stop()  # with the whole batch in the tagger's hands, uncommitted
            engine.go.set()

            # 1. Sent while the broker is away: not acknowledged, and reported as such.
            with pytest.raises(PublishError) as failure:
                publish_records(producer, kafka.papers_topic, during)
            report = failure.value.report
            assert report.published == 0 and report.ids == []
            assert sorted(k for k, _ in report.failed) == sorted(p["arxiv_id"] for p in during)
            producer.close(timeout=0)
            time.sleep(2)  # the tagger polls, retries and backs off against a dead address
            assert tagger.thread.is_alive()

            broker = EmbeddedBroker(port=port, log_file=tmp_path / "broker.log").start()
            # 2. The batch the tagger had in hand is stored, and its results are sent again
            # through a new producer until the restarted broker acknowledges them.
            wait_until(lambda: store.papers.count_tagged() == len(before), 180, "the in-flight batch stored")
            wait_until(lambda: tagger.batches and tagger.batches[0].tagged, 120, "the in-flight batch published")

            # 3. The producer's caller publishes again what was not acknowledged, then new papers.
            # The restarted broker's log starts at offset 0 again while the tagger's consumer
            # still holds positions in the old one: one paper per partition first, and the
            # rest once the tagger has read those (its fetch past the end of the new log resets
            # it to the start). Real Kafka keeps its offsets and needs no such care.
            producer = make_producer(kafka, **quick)
            send_one_per_partition(producer, kafka.papers_topic, after[:PARTITIONS])
            wait_until(lambda: all(store.papers.get(p["arxiv_id"]) for p in after[:PARTITIONS]), 180,
                       "the tagger reading the restarted broker")
            report = publish_records(producer, kafka.papers_topic, during + after[PARTITIONS:])
            wait_until(lambda: store.papers.count_tagged() == len(papers), 180, "every paper tagged")
            ends = {tp: n for tp, n in report.end_offsets.items()}
            wait_until(lambda: group_lag(kafka, settings.tagger.group_id, ends) == 0, 60, "offsets committed")
            assert tagger.thread.is_alive()  # the same worker throughout: no restart, no operator
            retried = tagger.worker.publisher.failures
        assert store.papers.count_assignments() == len(papers)  # every paper once, none twice

        # The tagger's results reach papers.tagged on the restarted broker (through a new producer).
        consumer = make_consumer(kafka, f"check-{run}", kafka.tagged_topic)
        results = {json.loads(r.value)["arxiv_id"] for r in drain(consumer, len(papers), timeout=30)}
        consumer.close()
        assert {p["arxiv_id"] for p in papers} <= results
        print(f"papers {len(papers)}, stored {store.papers.count_tagged()}, duplicates 0, lost 0, "
              f"unacknowledged and reported {len(during)}, result sends retried {retried}")
    finally:
        producer.close(timeout=0)
        broker.stop()
        store.close()
