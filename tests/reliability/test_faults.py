"""Faults with real processes and real servers: what must survive, measured."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.conftest import REPO, make_settings
from tests.e2e.test_stream import Tagger, wait_until
from tests.conftest import fresh_store, make_settings
from topictag.bus.kafka import ensure_topics, group_lag, make_producer
from topictag.ingest import publish_records
from topictag.settings import StoreSettings, TaggerSettings
from topictag.store import open_store

pytestmark = pytest.mark.model


def tagger_process(settings, log_path):
    env = os.environ | {
        "TOPICTAG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "TOPICTAG_KAFKA_PAPERS_TOPIC": settings.kafka.papers_topic,
        "TOPICTAG_KAFKA_TAGGED_TOPIC": settings.kafka.tagged_topic,
        "TOPICTAG_KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic,
        "TOPICTAG_KAFKA_MODELS_TOPIC": settings.kafka.models_topic,
        "TOPICTAG_STORE_URL": settings.store_url,
        "TOPICTAG_TAGGER_GROUP_ID": settings.tagger.group_id,
        "TOPICTAG_TAGGER_BATCH_SIZE": str(settings.tagger.batch_size),
        # The fault is in delivery, not inference: the transformers engine starts in seconds.
        "TOPICTAG_STUDENT_ENGINE": "transformers",
    }
    return subprocess.Popen([sys.executable, str(REPO / "services" / "tagger" / "main.py")], env=env, start_new_session=True,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def test_tagger_killed_mid_batch_loses_and_duplicates_nothing(tmp_path, kafka, sample_papers):
    """Fault: SIGKILL while a batch is in flight. Must hold: every paper stored exactly once."""
    settings = make_settings(tmp_path, kafka=kafka, tagger=TaggerSettings(group_id=f"tagger-{uuid.uuid4().hex[:6]}", batch_size=8))
    ensure_topics(kafka)
    store = open_store(settings.store_url)
    papers = sample_papers[500:524]
    producer = make_producer(kafka)
    report = publish_records(producer, kafka.papers_topic, papers)
    producer.close()

    first = tagger_process(settings, tmp_path / "tagger1.log")
    try:
        wait_until(lambda: store.papers.count_tagged() >= 8, 180, "a first committed batch")
        time.sleep(1.0)  # into the next batch
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    killed_at = store.papers.count_tagged()
    assert killed_at < len(papers), "the tagger finished before it could be killed"

    second = tagger_process(settings, tmp_path / "tagger2.log")
    try:
        wait_until(lambda: store.papers.count_tagged() == len(papers), 240, "every paper tagged after the restart")
        wait_until(lambda: group_lag(kafka, settings.tagger.group_id, report.end_offsets) == 0, 60, "offsets committed")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert store.papers.count_tagged() == len(papers)
    assert store.papers.count_assignments() == len(papers)  # no duplicate row from the replayed batch
    store.close()


class TcpProxy:
    """A TCP proxy we can cut and restore: the store 'goes away' without touching the server."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        self.sock.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up.clear()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def restore(self):
        self.up.set()

    def close(self):
        self.cut()
        self.sock.close()


def test_store_outage_stops_commits_and_resumes(tmp_path, kafka, postgres_url, student_engine, sample_papers):
    """Fault: the database becomes unreachable mid-stream. Must hold: offsets stop moving,
    the worker backs off, and after the store returns every paper is stored once."""
    proxy = TcpProxy(5432)
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = make_settings(
        tmp_path, kafka=kafka, store=StoreSettings(url=url),
        tagger=TaggerSettings(group_id=f"tagger-{uuid.uuid4().hex[:6]}", batch_size=8, max_wait_ms=100,
                              retry_backoff_s=0.2, retry_backoff_max_s=1.0),
    )
    ensure_topics(kafka)
    store = fresh_store(url)
    checker = open_store(postgres_url)  # the test's own view, not through the proxy
    papers = sample_papers[600:632]
    producer = make_producer(kafka)
    first_half = publish_records(producer, kafka.papers_topic, papers[:8])
    try:
        with Tagger(settings, student_engine, store) as tagger:
            wait_until(lambda: checker.papers.count_tagged() == 8, 120, "the first batch")
            proxy.cut()
            report = publish_records(producer, kafka.papers_topic, papers[8:])
            time.sleep(8)
            lag_during = group_lag(kafka, settings.tagger.group_id, _merge(first_half.end_offsets, report.end_offsets))
            assert checker.papers.count_tagged() == 8
            assert lag_during > 0  # nothing committed while the store is away
            proxy.restore()
            wait_until(lambda: checker.papers.count_tagged() == len(papers), 180, "the rest after the store returned")
            wait_until(lambda: group_lag(kafka, settings.tagger.group_id, _merge(first_half.end_offsets, report.end_offsets)) == 0, 60, "offsets committed")
        assert checker.papers.count_assignments() == len(papers)
    finally:
        producer.close()
        proxy.close()
        store.close()
        checker.close()


def _merge(a, b):
    return {tp: max(a.get(tp, 0), b.get(tp, 0)) for tp in a | b}
