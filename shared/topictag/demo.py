"""The whole system on one machine: broker, tagger, gateway, and papers streamed in.

Every service runs as its own process, exactly as it would be deployed; the demo only
starts them, feeds the ``papers`` topic from a file and watches the results arrive.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from topictag.bootstrap import Parts
from topictag.bus.embedded import EmbeddedBroker, free_port, port_answers
from topictag.bus.kafka import ensure_topics, group_lag, make_consumer, make_producer, wait_for_broker
from topictag.files import iter_paper_records, read_labels
from topictag.ingest import publish_records
from topictag.loop_watch import LoopWatch
from topictag.schemas import TagResult
from topictag.settings import Settings
from topictag.student.model_files import student_model_path
from topictag.trainer.service import retag_older_papers

log = logging.getLogger(__name__)

FIRST_TOPICS_SHOWN = 8  # topics printed as they arrive; then progress lines only


@dataclass
class Progress:
    published: int = 0
    tagged: int = 0
    dlq: int = 0
    lag: int | None = None
    first_tag_at: float | None = None
    first_topic: str | None = None
    first_adapter_version: str | None = None
    last_tag_at: float | None = None
    first_batch: int | None = None  # papers whose results came in with the first one
    ids: set[str] = field(default_factory=set)

    def rate(self) -> float | None:
        """Papers tagged per second while tagging runs: those after the first batch over the
        time since it came in. A batch's results come in at once, so the first batch alone
        says nothing of the rate (None), and the engine's start-up is no part of it."""
        if self.first_batch is None or self.first_tag_at is None or self.last_tag_at is None:
            return None
        after, span = self.tagged - self.first_batch, self.last_tag_at - self.first_tag_at
        return after / span if after > 0 and span > 0 else None

    def rate_text(self) -> str:
        rate = self.rate()
        return "-" if rate is None else f"{rate:.2f}"


def teacher_papers(settings: Settings) -> list[dict]:
    """The recorded teacher's abstracts as papers (its labels file has no ids or titles)."""
    labels = read_labels(settings.teacher_labels_file)
    return [
        {"arxiv_id": f"teacher-{i:04d}", "abstract": abstract, "categories": "cs.LG"}
        for i, abstract in enumerate(labels["abstract"])
    ]


class Demo:
    def __init__(self, settings: Settings, papers: Path, limit: int | None, loop: bool = False, out=sys.stderr):
        self.settings = settings
        self.papers = papers
        self.limit = limit
        self.loop = loop
        self.out = out
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.broker: EmbeddedBroker | None = None
        self.log_dir = settings.paths.data_dir / "logs"
        self.started = time.monotonic()
        self.loop_watch: LoopWatch | None = None
        self.retagged = False
        self.parts = Parts(settings)  # the demo's own view of the store (its settings are the store's)

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=self.out, flush=True)

    # -- set-up ---------------------------------------------------------------------------

    def start_broker(self) -> None:
        kafka = self.settings.kafka
        if kafka.bootstrap:
            self.say(f"using Kafka at {kafka.bootstrap}")
        else:
            self.broker = EmbeddedBroker(kafka.embedded_port, log_file=self.log_dir / "broker.log").start()
            kafka = kafka.model_copy(update={"bootstrap": self.broker.bootstrap})
            self.settings = self.settings.model_copy(update={"kafka": kafka})
            self.say(f"embedded Kafka-protocol broker (Tansu, in memory) at {kafka.bootstrap}")
        wait_for_broker(kafka)
        ensure_topics(kafka)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TOPICTAG_KAFKA_BOOTSTRAP"] = self.settings.kafka.bootstrap or ""
        env["TOPICTAG_STORE_URL"] = self.settings.store_url
        env["TOPICTAG_DATA_DIR"] = str(self.settings.paths.data_dir)
        env["TOPICTAG_CACHE_DIR"] = str(self.settings.paths.cache_dir)
        env["TOPICTAG_GATEWAY_PORT"] = str(self.settings.gateway.port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.loop:
            # Defaults sized so the loop completes while the demo runs; set these
            # variables yourself to override.
            env.setdefault("TOPICTAG_TRAINER_INTERVAL_S", "15")
            env.setdefault("TOPICTAG_TRAINER_MIN_NEW_LABELS", "100")
            env.setdefault("TOPICTAG_LABELER_SAMPLE_RATE", "0.5")
            env.setdefault("TOPICTAG_DISTILL_EPOCHS", "1")
        return env

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log_file = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child writes to it until stop())
        proc = subprocess.Popen(
            [sys.executable, "-m", "topictag", *args],
            env=self.child_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops children in order
        )
        log_file.close()
        self.children.append((name, proc))
        self.say(f"started {name} (pid {proc.pid}, log {self.log_dir / (name + '.log')})")
        return proc

    def start_gateway(self) -> str:
        gw = self.settings.gateway
        if gw.port == 0 or port_answers(gw.host, gw.port):
            port = free_port(gw.host)
            if gw.port:
                self.say(f"port {gw.port} is taken; the gateway uses {port}")
            gw = gw.model_copy(update={"port": port})
            self.settings = self.settings.model_copy(update={"gateway": gw})
        self.spawn("gateway", "gateway", "--host", gw.host, "--port", str(gw.port))
        url = f"http://{gw.host}:{gw.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gateway did not answer at {url} within 60 s")

    def check_children(self) -> None:
        for name, proc in self.children:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f"{name} exited with code {code}; see {self.log_dir / (name + '.log')}")

    # -- the run --------------------------------------------------------------------------

    def run(self, exit_when_done: bool) -> dict:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            t0 = time.monotonic()
            model = student_model_path(self.settings)
            prepare_s = time.monotonic() - t0
            self.say(f"student model ready at {model} ({prepare_s:.1f} s)")
            self.start_broker()
            self.spawn("tagger", "tagger")
            if self.loop:
                self.spawn("labeler", "labeler")
                self.spawn("trainer", "trainer", "worker", "--beat")
            url = self.start_gateway()
            self.say(f"gateway serving at {url} (API docs at {url}/docs)")
            progress, seconds = self.stream(exit_when_done)
            summary: dict[str, Any] = {
                "papers": progress.published,
                "tagged": progress.tagged,
                "dlq": progress.dlq,
                "seconds": round(seconds, 1),
                "papers_per_s": None if (rate := progress.rate()) is None else round(rate, 2),
                "first_tag_s": round(progress.first_tag_at - self.started, 1) if progress.first_tag_at else None,
                "first_topic": progress.first_topic,
                "first_adapter_version": progress.first_adapter_version,
                "prepare_model_s": round(prepare_s, 1),
                "gateway_url": url,
                "gateway_ok": self.gateway_answers(url, progress),
            }
            if self.loop_watch is not None:
                summary["loop"] = asdict(self.loop_watch.timeline)
            if not exit_when_done:
                self.say(f"all papers processed; the gateway keeps serving at {url} until Ctrl-C")
                while True:
                    self.check_children()
                    time.sleep(1)
            return summary
        finally:
            self.stop()

    def stream(self, exit_when_done: bool) -> tuple[Progress, float]:
        kafka = self.settings.kafka
        progress = Progress()
        since = datetime.now(UTC)
        rows = list(iter_paper_records(self.papers, self.limit))
        if self.loop:
            # The recorded teacher knows only the abstracts in its labels file: stream those
            # papers first so labels accumulate while the sample papers are tagged.
            rows = teacher_papers(self.settings) + rows
            self.loop_watch = LoopWatch(self.parts.store, self.started, self.say)
        # A private group reads results from the start of the topic; only results of this
        # run's papers, tagged after it began, are counted.
        watcher = make_consumer(kafka, f"topictag-demo-{uuid.uuid4().hex[:8]}", kafka.tagged_topic, kafka.dlq_topic)
        producer = make_producer(kafka)
        try:
            t_publish = time.monotonic()
            report = publish_records(producer, kafka.papers_topic, rows)
            progress.published = report.published
            self.say(f"published {report.published} papers from {self.papers} in {time.monotonic() - t_publish:.1f} s")
            wanted = set(report.ids)
            last_report = 0.0
            while True:
                self.check_children()
                for records in watcher.poll(timeout_ms=500).values():
                    for r in records:
                        self.count(r, progress, wanted, since)
                if progress.first_tag_at is not None and progress.first_batch is None:
                    progress.first_batch = progress.tagged
                drained = progress.tagged + progress.dlq >= progress.published
                # Looked at on every pass, so the loop's timeline has the times things happened.
                if self.loop_finished(drained) and drained:
                    break
                now = time.monotonic()
                if now - last_report >= 2:
                    last_report = now
                    progress.lag = group_lag(kafka, self.settings.tagger.group_id, report.end_offsets)
                    labels = f"  teacher labels {self.loop_watch.timeline.labels}" if self.loop_watch else ""
                    self.say(
                        f"published {progress.published}  tagged {progress.tagged}  dlq {progress.dlq}  "
                        f"{progress.rate_text()} papers/s  lag {progress.lag}{labels}"
                    )
            self.say(f"done: {progress.tagged} tagged, {progress.dlq} dead-lettered, {progress.rate_text()} papers/s")
            return progress, time.monotonic() - t_publish
        finally:
            watcher.close(autocommit=False)
            producer.close(timeout=10)

    def loop_finished(self, drained: bool) -> bool:
        if self.loop_watch is None:
            return True
        timeline = self.loop_watch.look()
        if drained and timeline.outcome == "promoted" and timeline.swap_s is None and not self.retagged:
            # The stream may have drained before the promotion: re-tag some papers so the
            # switch to the new adapter shows.
            self.retagged = True
            self.say(f"loop: re-tagging papers with {timeline.version}")
            retag_older_papers(self.settings, limit=self.settings.tagger.batch_size)
        return timeline.finished

    def count(self, record, progress: Progress, wanted: set[str], since: datetime) -> None:
        if record.topic == self.settings.kafka.dlq_topic:
            if record.timestamp >= since.timestamp() * 1000:
                progress.dlq += 1
            return
        result = TagResult.model_validate_json(record.value)
        if result.arxiv_id in wanted and result.arxiv_id not in progress.ids and result.tagged_at >= since:
            progress.ids.add(result.arxiv_id)
            progress.tagged += 1
            progress.last_tag_at = time.monotonic()
            if progress.first_tag_at is None:
                progress.first_tag_at = progress.last_tag_at
                progress.first_topic, progress.first_adapter_version = result.topic, result.adapter_version
                self.say(f"first paper tagged: {result.arxiv_id} -> {result.topic!r} (adapter {result.adapter_version})")
            elif progress.tagged <= FIRST_TOPICS_SHOWN:
                self.say(f"tagged {result.arxiv_id} -> {result.topic!r} (adapter {result.adapter_version})")

    def gateway_answers(self, url: str, progress: Progress) -> bool:
        """Every paper this run tagged can be fetched from the gateway."""
        with httpx.Client(base_url=url, timeout=10) as client:
            return all(client.get(f"/v1/papers/{i}").status_code == 200 for i in sorted(progress.ids))

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self.children):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop in 30 s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children.clear()
        self.parts.close()
        if self.broker:
            self.broker.stop()
            self.broker = None
