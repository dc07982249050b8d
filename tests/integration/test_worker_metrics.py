"""Workers (tagger, labeler) have no HTTP server of their own: with TOPICTAG_METRICS_PORT set
they serve their Prometheus metrics, so the dashboard sees what they do."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.e2e.test_stream import wait_until
from topictag.bus.embedded import free_port
from topictag.bus.kafka import ensure_topics, make_producer
from topictag.ingest import publish_records
from topictag.metrics import serve_metrics


def sample(text: str, name: str) -> float | None:
    """The value of an unlabelled sample in Prometheus' text format."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def listening_ports() -> set[int]:
    """TCP ports this process listens on (Linux: its socket fds matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own fd, closed by now
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_without_a_port_no_listener_is_opened():
    with socket.create_server(("127.0.0.1", 0)) as control:  # what the check sees
        assert control.getsockname()[1] in listening_ports()
    before = listening_ports()
    serve_metrics(None)
    assert listening_ports() == before


def test_labeler_process_serves_its_metrics(tmp_path, kafka, bundle, teacher_labels):
    ensure_topics(kafka)
    port = free_port()
    dev = teacher_labels.head(20)
    env = os.environ | {
        "TOPICTAG_KAFKA_BOOTSTRAP": kafka.bootstrap, "TOPICTAG_KAFKA_PAPERS_TOPIC": kafka.papers_topic,
        "TOPICTAG_DATA_DIR": str(tmp_path / "data"), "TOPICTAG_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "TOPICTAG_TEACHER_LABELS_FILE": str(bundle / "teacher_labels.parquet"),
        "TOPICTAG_LABELER_SAMPLE_RATE": "1.0", "TOPICTAG_LABELER_GROUP_ID": f"labeler-{port}",
        "TOPICTAG_METRICS_PORT": str(port), "TOPICTAG_METRICS_HOST": "127.0.0.1",
    }
    labeler = subprocess.Popen([sys.executable, str(REPO / "services" / "labeler" / "main.py")], env=env, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "labeler.log", "wb"))
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str:
        try:
            return httpx.get(url, timeout=2).text
        except httpx.HTTPError:
            return ""

    try:
        wait_until(lambda: "topictag_papers_sampled_total" in scrape() or labeler.poll() is not None, 60,
                   f"the labeler's metrics endpoint (log: {tmp_path / 'labeler.log'})")
        assert labeler.poll() is None, (tmp_path / "labeler.log").read_text()[-2000:]
        producer = make_producer(kafka)
        papers = [{"arxiv_id": f"dev-{r}", "abstract": a} for r, a in zip(dev["row"], dev["abstract"])]
        publish_records(producer, kafka.papers_topic, papers)
        producer.close()
        wait_until(lambda: sample(scrape(), "topictag_papers_sampled_total") == len(papers), 60, "the sampled count")
        text = scrape()
        assert sample(text, "topictag_papers_parked_total") == 0.0
        labelled = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("topictag_teacher_labels_total{")]
        assert sum(labelled) == len(papers)  # the recorded teacher knows every dev row
        assert "topictag_consumer_lag{" in text and "topictag_messages_consumed_total{" in text
    finally:
        labeler.send_signal(signal.SIGTERM)
        labeler.wait(60)
