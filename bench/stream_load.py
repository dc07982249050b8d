"""Sustained stream: papers from the arXiv stream file published at a steady rate through
the embedded broker -> tagger process(es) (the real `topictag tagger`, vLLM on the CPU) ->
store, as the system runs in production. On demand, not in CI.

    .venv/bin/python -m bench.stream_load [--rate 20] [--seconds 600] [--taggers 1] [--batch-size 32] [--max-wait-ms 500]

Reports: papers published / tagged, the rate achieved, consumer lag over time (max, at the
end of the stream, and whether and how fast it drains afterwards), end-to-end latency
(publish -> tag result) p50/p95/p99/max, and peak RSS of each process (tagger, its vLLM
engine processes, broker). Writes bench/results/stream_load.json and stream_load.png.

A rate above what the taggers can tag is a valid experiment: the lag grows during the
stream and drains afterwards at the taggers' own rate (the workers keep one batch in
hand; the backlog waits in Kafka). The clock starts after one warm-up paper is tagged, so
engine start-up is not in the latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import psutil

from bench.common import RESULTS, write
from topictag.bus.embedded import EmbeddedBroker
from topictag.bus.kafka import ensure_topics, group_lag, make_consumer, make_producer
from topictag.files import iter_paper_records
from topictag.ingest import record_to_message
from topictag.settings import KafkaSettings, get_settings
from topictag.store import open_store


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class RssWatch:
    """Peak RSS of named processes and their children, sampled every ``period`` s."""

    def __init__(self, period: float = 1.0):
        self.roots: dict[str, psutil.Process] = {}
        self.peak_mb: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}  # user + system CPU seconds so far, per process
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, name: str, pid: int) -> None:
        self.roots[name] = psutil.Process(pid)

    def sample(self) -> None:
        for name, root in list(self.roots.items()):
            try:
                procs = [(name, root)] + [(f"{name}/{c.name()}", c) for c in root.children(recursive=True)]
            except psutil.Error:
                continue
            total = 0.0
            for label, proc in procs:
                try:
                    mb = proc.memory_info().rss / 2**20
                    cpu = proc.cpu_times()
                except psutil.Error:
                    continue
                self.cpu_s[label] = max(self.cpu_s.get(label, 0.0), cpu.user + cpu.system)
                total += mb
                self.peak_mb[label] = max(self.peak_mb.get(label, 0.0), mb)
            self.peak_mb[f"{name} (with children)"] = max(self.peak_mb.get(f"{name} (with children)", 0.0), total)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def start(self) -> RssWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def publish_offsets(rows: list[dict], rate: float, pace: str) -> list[float]:
    """Seconds after the start at which each row is published."""
    if pace == "steady":
        return [i / rate for i in range(len(rows))]
    days = [str(r.get("first_seen_date") or "") for r in rows]
    slot_of = {d: i for i, d in enumerate(dict.fromkeys(days))}  # the stream is oldest first
    slot = len(rows) / len(slot_of) / rate
    counts, seen = Counter(days), Counter()
    offsets = []
    for d in days:
        offsets.append((slot_of[d] + seen[d] / counts[d]) * slot)
        seen[d] += 1
    return offsets


def tagger_process(kafka: KafkaSettings, store_url: str, group: str, batch_size: int, max_wait_ms: int, log_path: Path):
    env = os.environ | {
        "TOPICTAG_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TOPICTAG_KAFKA_PAPERS_TOPIC": kafka.papers_topic,
        "TOPICTAG_KAFKA_TAGGED_TOPIC": kafka.tagged_topic,
        "TOPICTAG_KAFKA_DLQ_TOPIC": kafka.dlq_topic,
        "TOPICTAG_KAFKA_MODELS_TOPIC": kafka.models_topic,
        "TOPICTAG_STORE_URL": store_url,
        "TOPICTAG_TAGGER_GROUP_ID": group,
        "TOPICTAG_TAGGER_BATCH_SIZE": str(batch_size),
        "TOPICTAG_TAGGER_MAX_WAIT_MS": str(max_wait_ms),
    }
    return subprocess.Popen([sys.executable, "-m", "topictag", "tagger"], env=env, start_new_session=True,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def plot(name: str, timeline: list[dict], stream_end_s: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [p["t"] for p in timeline]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(t, [p["published"] for p in timeline], label="published", color="#9aa3b5")
    ax.plot(t, [p["tagged"] for p in timeline], label="tagged", color="#2f6fdf")
    ax.plot(t, [p["lag"] for p in timeline], label="consumer lag", color="#d9534f")
    ax.axvline(stream_end_s, color="#555", linestyle=":", label="stream ends")
    ax.set_xlabel("seconds")
    ax.set_ylabel("papers")
    ax.set_title("Sustained stream: broker -> tagger -> store")
    ax.legend()
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0, help="papers published per second")
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the stream lasts")
    parser.add_argument("--papers", type=Path, default=settings.paths.bundle_dir / "arxiv_ml_stream.parquet")
    parser.add_argument("--taggers", type=int, default=1, help="tagger processes (one consumer group)")
    parser.add_argument("--batch-size", type=int, default=settings.tagger.batch_size)
    parser.add_argument("--max-wait-ms", type=int, default=settings.tagger.max_wait_ms, help="longest wait to fill a batch")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="longest wait for the lag to drain")
    parser.add_argument("--pace", choices=["steady", "days"], default="steady",
                        help="steady: one paper every 1/rate s; days: each first_seen_date day gets an equal time "
                        "slot and its papers are spread over it (the stream's daily bursts, at --rate on average)")
    parser.add_argument("--name", default="stream_load")
    args = parser.parse_args()

    work = RESULTS / "tmp" / f"{args.name}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True, exist_ok=True)
    wanted = int(args.rate * args.seconds) + 1
    rows = [r for _, r in zip(range(wanted), iter_paper_records(args.papers))]
    warmup, rows = rows[0], rows[1:]

    broker = EmbeddedBroker(log_file=work / "broker.log").start()
    kafka = KafkaSettings(bootstrap=broker.bootstrap, partitions=4)
    store_url = f"sqlite:///{(work / 'topictag.db').resolve()}"
    group = f"bench-{uuid.uuid4().hex[:6]}"
    ensure_topics(kafka)
    store = open_store(store_url)
    store.upgrade_schema()
    rss = RssWatch()
    rss.add("broker", broker.process.pid)
    taggers = [tagger_process(kafka, store_url, group, args.batch_size, args.max_wait_ms, work / f"tagger{i}.log") for i in range(args.taggers)]
    for i, proc in enumerate(taggers):
        rss.add(f"tagger{i}", proc.pid)
    rss.start()

    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    tagged_ids: set[str] = set()
    ends: dict = {}
    lock = threading.Lock()
    results = make_consumer(kafka, f"{group}-results", kafka.tagged_topic)
    stop_reading = threading.Event()

    def read_results() -> None:
        while not stop_reading.is_set():
            for records in results.poll(timeout_ms=500).values():
                for r in records:
                    body = json.loads(r.value)
                    tagged_at = datetime.fromisoformat(body["tagged_at"]).timestamp()
                    with lock:
                        if body["arxiv_id"] in sent_at and body["arxiv_id"] not in tagged_ids:
                            tagged_ids.add(body["arxiv_id"])
                            latencies.append(tagged_at - sent_at[body["arxiv_id"]])

    reader = threading.Thread(target=read_results, daemon=True)
    reader.start()
    producer = make_producer(kafka)
    timeline: list[dict] = []
    published = 0
    try:
        # Warm-up: the engines start and tag one paper before the clock starts.
        key, value = record_to_message(warmup)
        with lock:
            sent_at[key] = time.time()
        producer.send(kafka.papers_topic, key=key, value=value).get(timeout=60)
        deadline = time.monotonic() + 900
        while key not in tagged_ids:
            if any(p.poll() is not None for p in taggers) or time.monotonic() > deadline:
                raise SystemExit(f"a tagger did not start; see {work}")
            time.sleep(0.5)
        with lock:
            tagged_ids.clear()
            latencies.clear()
        rss.sample()
        cpu_at_start = dict(rss.cpu_s)  # engine start-up is not counted per paper
        print(f"taggers ready; streaming {len(rows)} papers at {args.rate}/s", flush=True)

        def on_ack(meta) -> None:
            with lock:
                tp = (meta.topic, meta.partition)
                ends[tp] = max(ends.get(tp, 0), meta.offset + 1)

        def lag() -> int:
            from kafka import TopicPartition

            with lock:
                current = {TopicPartition(*tp): n for tp, n in ends.items()}
            return group_lag(kafka, group, current) if current else 0

        offsets = publish_offsets(rows, args.rate, args.pace)
        started = time.monotonic()
        next_sample = started
        for i, row in enumerate(rows):
            due = started + offsets[i]
            while (now := time.monotonic()) < due:
                if now >= next_sample:
                    timeline.append({"t": round(now - started, 1), "published": published,
                                     "tagged": len(tagged_ids), "lag": lag()})
                    next_sample += 1.0
                time.sleep(min(0.05, max(0.0, due - now)))
            key, value = record_to_message(row)
            with lock:
                sent_at[key] = time.time()
            producer.send(kafka.papers_topic, key=key, value=value).add_callback(on_ack)
            published += 1
        producer.flush()
        stream_s = time.monotonic() - started
        lag_at_end = lag()
        print(f"stream done: {published} papers in {stream_s:.0f} s; lag {lag_at_end}; draining", flush=True)

        drain_started = time.monotonic()
        drained = False
        while time.monotonic() - drain_started < args.drain_timeout:
            now = time.monotonic()
            current = lag()
            timeline.append({"t": round(now - started, 1), "published": published, "tagged": len(tagged_ids), "lag": current})
            if current == 0 and len(tagged_ids) >= published:
                drained = True
                break
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_started
        total_s = time.monotonic() - started
        tagged_at_stream_end = next((p["tagged"] for p in timeline if p["t"] >= stream_s), len(tagged_ids))
        rss.sample()
        cpu_at_end = dict(rss.cpu_s)
    finally:
        for proc in taggers:
            proc.send_signal(signal.SIGTERM)
        for proc in taggers:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        rss.stop()
        stop_reading.set()
        reader.join(5)
        results.close()
        producer.close(timeout=5)
        broker.stop()

    tagged = store.papers.count_tagged() - 1  # the warm-up paper
    store.close()
    result = {
        "rate_target": args.rate,
        "seconds_target": args.seconds,
        "taggers": args.taggers,
        "pace": args.pace,
        "batch_size": args.batch_size,
        "max_wait_ms": args.max_wait_ms,
        "published": published,
        "stream_seconds": round(stream_s, 1),
        "rate_achieved": round(published / stream_s, 2),
        "tagged": tagged,
        "tagged_per_s_overall": round(tagged / total_s, 2),
        "max_lag": max((p["lag"] for p in timeline), default=0),
        "lag_at_stream_end": lag_at_end,
        "lag_drained": drained,
        "drain_seconds": round(drain_s, 1),
        "latency_s": {q: round(percentile(latencies, float(q[1:])), 2) for q in ("p50", "p95", "p99")}
        | {"max": round(max(latencies), 2) if latencies else None, "n": len(latencies)},
        # Backlogged: the taggers' own pace while the lag drains (their capacity).
        "tagged_per_s_draining": round((len(tagged_ids) - tagged_at_stream_end) / drain_s, 2) if drain_s > 5 else None,
        "peak_rss_mb": {k: round(v) for k, v in sorted(rss.peak_mb.items())},
        "cpu_s_per_paper": {k: round((v - cpu_at_start.get(k, 0.0)) / max(tagged, 1), 3)
                            for k, v in sorted(cpu_at_end.items())},
        "timeline": timeline,
        "work_dir": str(work),
    }
    write(args.name, result)
    plot(args.name, timeline, stream_s)


if __name__ == "__main__":
    main()
