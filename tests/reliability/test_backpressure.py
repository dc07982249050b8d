"""Backpressure: when the store is slow, the tagger holds at most one batch of papers
that are not committed, and the backlog waits in Kafka (consumer lag grows), not in the
worker's memory; when the store is fast again, the lag drains."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import make_settings
from tests.e2e.test_stream import Tagger, wait_until
from topictag.bus.kafka import ensure_topics, group_lag, make_producer
from topictag.ingest import publish_records
from topictag.settings import TaggerSettings
from topictag.store import open_store

pytestmark = pytest.mark.model

BATCH = 4


class SlowStore:
    """The real store, with each write of tagged papers taking ``delay`` seconds longer."""

    def __init__(self, store, delay: float):
        self.store, self.delay = store, delay

    def __getattr__(self, name):
        return getattr(self.store, name)

    def save_tagged(self, tagged):
        time.sleep(self.delay)
        return self.store.papers.save_tagged(tagged)


def test_slow_store_keeps_in_flight_bounded_and_lag_in_kafka(tmp_path, kafka, student_engine, sample_papers):
    settings = make_settings(tmp_path, kafka=kafka, tagger=TaggerSettings(
        group_id=f"tagger-{uuid.uuid4().hex[:6]}", batch_size=BATCH, max_wait_ms=100))
    ensure_topics(kafka)
    store = open_store(settings.store_url)
    slow = SlowStore(store, delay=2.0)
    papers = sample_papers[1300:1316]
    in_flight: list[int] = []  # records held and not committed, sampled at each batch
    lags: list[int] = []
    producer = make_producer(kafka)
    try:
        with Tagger(settings, student_engine, slow) as tagger:
            process = tagger.worker.process

            def counted(records):
                in_flight.append(len(records))
                return process(records)

            tagger.worker.process = counted
            report = publish_records(producer, kafka.papers_topic, papers)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the store takes 2 s a batch: the backlog builds up
                lags.append(group_lag(kafka, settings.tagger.group_id, report.end_offsets))
                time.sleep(0.5)
            done_slow = store.papers.count_tagged()
            assert done_slow <= 3 * BATCH  # at most 3 batches in 5 s
            assert max(lags) > BATCH  # a backlog larger than a worker may hold: it waits in Kafka

            slow.delay = 0.0  # the store recovers: the lag drains
            wait_until(lambda: group_lag(kafka, settings.tagger.group_id, report.end_offsets) == 0, 180, "the lag to drain")
        assert max(in_flight) <= BATCH  # never more than one batch in the worker's hands
        assert store.papers.count_tagged() == store.papers.count_assignments() == len(papers)
        print(f"papers {len(papers)}, batch {BATCH}, max in flight {max(in_flight)}, max lag {max(lags)}, "
              f"tagged while slow {done_slow}, drained to 0")
    finally:
        producer.close()
        store.close()
