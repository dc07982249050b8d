"""Fault: the teacher endpoint is down, then slow (timeouts), then answers garbage, then
recovers - while the labeler and a tagger consume the same stream.

Must hold: the labeler retries with back-off, parks what keeps failing, commits and moves
on; tagging is not held up; once the teacher answers, every sampled paper is labelled,
exactly once; no sampled paper is lost.

Unit-level behaviour of the OpenAI teacher (retries, breaker, timeouts, garbage kinds) is
in tests/integration/test_teacher_openai.py; an unreachable teacher replaced by the
recorded one is in tests/e2e/test_labeler.py. Here the same teacher object, over real HTTP,
goes through every failure and comes back.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import make_settings
from tests.e2e.test_labeler import Labeler, read_labels_topic
from tests.e2e.test_stream import Tagger, wait_until
from topictag.bus.embedded import free_port
from topictag.bus.kafka import ensure_topics, group_lag, make_producer
from topictag.ingest import publish_records
from topictag.settings import LabelerSettings, TaggerSettings, TeacherSettings
from topictag.store import open_store
from topictag.teacher.openai import OpenAITeacher

pytestmark = pytest.mark.model


class FlakyTeacherServer:
    """A chat-completions endpoint on a fixed port that can be down (nothing listens),
    slow (answers after the client's timeout), garbage (200 with HTML) or ok."""

    def __init__(self, port: int):
        self.port = port
        self.mode = "ok"
        self.calls: Counter[str] = Counter()
        self.httpd: ThreadingHTTPServer | None = None

    def start(self, mode: str) -> None:
        self.mode = mode
        if self.httpd is not None:
            return
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode = server.mode
                server.calls[mode] += 1
                if mode == "slow":
                    time.sleep(1.0)
                payload = (b"<html>upstream error</html>" if mode == "garbage" else json.dumps(
                    {"choices": [{"index": 0, "message": {"role": "assistant",
                                                           "content": f"Topic: labelled by {body['model']}"}}]}
                ).encode())
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def test_teacher_down_slow_garbage_then_back(tmp_path, kafka, student_engine, sample_papers):
    run = uuid.uuid4().hex[:6]
    settings = make_settings(
        tmp_path, kafka=kafka.model_copy(update={"labels_topic": f"labels-{run}"}),
        tagger=TaggerSettings(group_id=f"tagger-{run}", batch_size=8, max_wait_ms=200),
        labeler=LabelerSettings(group_id=f"labeler-{run}", sample_rate=1.0, batch_size=4, max_wait_ms=200,
                                parked_retry_s=0.5),
    )
    ensure_topics(settings.kafka)
    store = open_store(settings.store_url)
    server = FlakyTeacherServer(free_port())
    teacher = OpenAITeacher(TeacherSettings(
        base_url=f"http://127.0.0.1:{server.port}/v1", model="teacher-under-test", timeout_s=0.3, max_retries=1,
        backoff_s=0.01, backoff_max_s=0.05, breaker_failures=1000, max_concurrency=4))  # the breaker: unit-tested
    papers = sample_papers[1200:1209]
    phases = [("down", papers[:3]), ("slow", papers[3:6]), ("garbage", papers[6:])]
    producer = make_producer(settings.kafka)
    reasons: set[str] = set()
    ends = {}

    def parked_reasons() -> set[str]:
        far = datetime.now(timezone.utc) + timedelta(days=1)
        return {p.reason.split(":", 1)[0] for p in store.parked.due(far, 100)}

    try:
        with Tagger(settings, student_engine, store), Labeler(settings, teacher, store):
            for mode, batch in phases:
                if mode == "down":
                    server.stop()
                else:
                    server.start(mode)
                report = publish_records(producer, settings.kafka.papers_topic, batch)
                ends = {tp: max(ends.get(tp, 0), n) for tp, n in (ends | report.end_offsets).items()}
                ids = {p["arxiv_id"] for p in batch}
                wait_until(lambda: ids <= {p.arxiv_id for p in store.parked.due(
                    datetime.now(timezone.utc) + timedelta(days=1), 100)}, 60, f"papers parked while {mode}")
                reasons |= parked_reasons()
            # The labeler committed past every paper it could not label: it is not stuck.
            wait_until(lambda: group_lag(settings.kafka, settings.labeler.group_id, ends) == 0, 30, "labeler commits")
            # The tagger was not held up by the teacher: everything is tagged before it returns.
            wait_until(lambda: store.papers.count_tagged() == len(papers), 180, "every paper tagged")
            assert store.teacher_labels.count() == 0 and store.parked.count() == len(papers)

            server.start("ok")  # the teacher is back: the parked papers are labelled
            wait_until(lambda: store.parked.count() == 0, 90, "parked papers labelled")
        ids = sorted(p["arxiv_id"] for p in papers)
        assert store.teacher_labels.count() == len(papers)
        assert store.teacher_labels.labelled_ids(ids, teacher.model) == set(ids)  # every sampled paper, none lost
        published = read_labels_topic(settings.kafka, len(papers))
        assert sorted(key for key, _ in published) == ids  # once each on the labels topic
        assert {"unreachable", "timeout", "garbage"} <= {r.split(";")[0] for r in reasons}, reasons
        assert server.calls["garbage"] > len(phases[2][1])  # retried before parking
    finally:
        teacher.close()
        server.stop()
        producer.close()
        store.close()
    print(f"papers {len(papers)}, tagged {len(papers)}, labelled {len(papers)}, lost 0; parked reasons {sorted(reasons)}; "
          f"teacher calls {dict(server.calls)}")
