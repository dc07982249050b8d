"""Observability: `topictag status` against a real SQLite store and the embedded broker (and
without one), the consumer-lag gauge a worker sets from its own fetches, and JSON log lines."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata
from prometheus_client import REGISTRY
from sqlmodel import Session
from typer.testing import CliRunner

from tests.integration.test_registry import BASE, adapter_dir
from topictag.adapters.registry import AdapterRegistry
from topictag.bus.batching import poll_batch
from topictag.bus.embedded import free_port
from topictag.bus.kafka import client_config, ensure_topics, make_consumer, make_producer
from topictag.cli import app
from topictag.ingest import publish_records
from topictag.logs import setup_logging
from topictag.schemas import Paper, TagResult
from topictag.settings import get_settings
from topictag.store.models import TeacherLabel, TrainingRun
from topictag.store import Store, open_store

# Minutes ago each tagged paper was tagged: 2 in the last minute, 3 in the last 5, 5 in the last hour.
TAGGED_MINUTES_AGO = [0.2, 0.5, 3, 20, 45, 90, 600]
PUBLISHED = 23


def paper_rows(n: int, prefix: str) -> list[dict]:
    return [{"arxiv_id": f"{prefix}.{i:05d}", "title": f"Paper {i}", "abstract": f"Abstract of paper {i}."}
            for i in range(n)]


def fill_store(store: Store, adapters_root, now: datetime) -> None:
    store.papers.save_tagged([
        (Paper(arxiv_id=f"2601.{i:05d}", title=f"Paper {i}", abstract=f"Abstract {i}"),
         TagResult(arxiv_id=f"2601.{i:05d}", topic="Graph Neural Networks", adapter_version="v1", model=BASE,
                   latency_ms=1.0, tagged_at=now - timedelta(minutes=ago)))
        for i, ago in enumerate(TAGGED_MINUTES_AGO)
    ])
    store.teacher_labels.save([
        TeacherLabel(arxiv_id=f"2601.{i:05d}", abstract=f"Abstract {i}", topic="Graph Learning",
                     teacher_model="teacher", labelled_at=now - timedelta(hours=3 - i))
        for i in range(3)
    ])
    registry = AdapterRegistry(store)
    for version, rouge in (("v1", 41.5), ("v2", 44.25)):
        registry.register(version, adapter_dir(adapters_root, version), base_model=BASE,
                          metrics={"rouge1_f": rouge, "bleu3": rouge / 2}, training_config={}, label_snapshot={})
    registry.promote("v1", "first", BASE)
    registry.promote("v2", "better", BASE)
    with Session(store.engine) as s:
        s.add(TrainingRun(request_id="labels-up-to-1", status="refused", version="v0", detail="not better",
                          started_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=2)))
        s.add(TrainingRun(request_id="labels-up-to-3", status="promoted", version="v2", detail="better",
                          n_train=2, n_eval=1, started_at=now - timedelta(minutes=30),
                          finished_at=now - timedelta(minutes=10)))
        s.commit()


@dataclass
class CliEnv:
    monkeypatch: pytest.MonkeyPatch
    now: datetime  # what the store's figures are relative to

    def set(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)
        get_settings.cache_clear()


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """A store with papers, labels, a promoted adapter and trainings; the CLI's settings point at it."""
    now = datetime.now(timezone.utc)
    store = open_store(f"sqlite:///{tmp_path / 'topictag.db'}")
    (tmp_path / "adapters").mkdir()
    fill_store(store, tmp_path / "adapters", now)
    store.close()
    run = uuid.uuid4().hex[:8]
    env = {
        "TOPICTAG_STORE_URL": f"sqlite:///{tmp_path / 'topictag.db'}",
        "TOPICTAG_DATA_DIR": str(tmp_path / "data"),
        "TOPICTAG_TAGGER_GROUP_ID": f"tagger-{run}",
        "TOPICTAG_LABELER_GROUP_ID": f"labeler-{run}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield CliEnv(monkeypatch, now)
    get_settings.cache_clear()


def status_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["status", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_store_figures(report: dict, now: datetime) -> None:
    assert report["tagged"]["total"] == len(TAGGED_MINUTES_AGO)
    assert [(w["minutes"], w["papers"]) for w in report["tagged"]["windows"]] == [(1, 2), (5, 3), (60, 5)]
    assert report["tagged"]["windows"][1]["per_minute"] == 0.6
    assert report["teacher_labels"]["count"] == 3
    last_label = datetime.fromisoformat(report["teacher_labels"]["last_labelled_at"])
    assert abs(last_label - (now - timedelta(hours=1))) < timedelta(seconds=1)
    adapter = report["production_adapter"]
    assert (adapter["version"], adapter["rouge1_f"], adapter["bleu3"]) == ("v2", 44.25, 22.125)
    assert datetime.fromisoformat(adapter["promoted_at"]) >= now
    training = report["last_training"]
    assert (training["request_id"], training["status"], training["version"]) == ("labels-up-to-3", "promoted", "v2")
    assert (training["n_train"], training["n_eval"]) == (2, 1)


def test_status_reports_lag_per_group_and_the_store(cli_env, kafka):
    ensure_topics(kafka, kafka.papers_topic)
    producer = make_producer(kafka)
    try:  # batched sends: the embedded broker's ListOffsets under-reports the end after these
        report = publish_records(producer, kafka.papers_topic, paper_rows(PUBLISHED, "2602"))
    finally:
        producer.close()
    assert report.published == PUBLISHED
    # The labeler group committed 5 messages of one partition; the tagger group never committed.
    tp, end = max(report.end_offsets.items(), key=lambda item: item[1])
    assert end >= 5
    committer = KafkaConsumer(**client_config(kafka), group_id=get_settings().labeler.group_id,
                              enable_auto_commit=False)
    try:
        committer.assign([tp])
        committer.commit({tp: OffsetAndMetadata(5, "", -1)})
    finally:
        committer.close(autocommit=False)

    cli_env.set("TOPICTAG_KAFKA_BOOTSTRAP", kafka.bootstrap)
    cli_env.set("TOPICTAG_KAFKA_PAPERS_TOPIC", kafka.papers_topic)
    report = status_json()
    assert report["broker"] == kafka.bootstrap and report["broker_error"] is None
    settings = get_settings()
    assert {(r["topic"], r["group"]): r["lag"] for r in report["lag"]} == {
        (kafka.papers_topic, settings.tagger.group_id): PUBLISHED,
        (kafka.papers_topic, settings.labeler.group_id): PUBLISHED - 5,
    }
    assert_store_figures(report, cli_env.now)


def test_status_without_a_broker_says_so_and_reports_the_rest(cli_env):
    cli_env.set("TOPICTAG_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")  # nothing listens there
    report = status_json("--broker-timeout", "1")
    assert report["broker_error"].startswith("broker unreachable at 127.0.0.1:")
    assert [r["lag"] for r in report["lag"]] == [None, None]
    assert_store_figures(report, cli_env.now)

    tables = CliRunner().invoke(app, ["status", "--broker-timeout", "1"], terminal_width=200)
    assert tables.exit_code == 0, tables.output
    for shown in ("Consumer lag", "broker unreachable", "last 5 min", "v2: BLEU-3 22.125, ROUGE-1 F 44.25",
                  "labels-up-to-3: promoted (v2)"):
        assert shown in tables.stdout


def test_a_worker_sets_its_consumer_lag_from_its_own_fetches(kafka):
    # One partition, so one fetch response carries every message's high-water mark.
    kafka = kafka.model_copy(update={"partitions": 1})
    ensure_topics(kafka, kafka.papers_topic)
    producer = make_producer(kafka)
    try:
        publish_records(producer, kafka.papers_topic, paper_rows(12, "2603"))
    finally:
        producer.close()
    group = f"lag-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka, group, kafka.papers_topic)

    def sample(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"group": group, "topic": kafka.papers_topic})

    try:
        batch: list = []
        for _ in range(20):  # the first polls wait for the group to form
            batch = poll_batch(consumer, 5, 100, threading.Event())
            if batch:
                break
        assert len(batch) == 5
        assert sample("topictag_consumer_lag") == 12 - 5
        assert sample("topictag_messages_consumed_total") == 5
        while len(batch) < 12:
            batch += poll_batch(consumer, 5, 100, threading.Event())
        assert sample("topictag_consumer_lag") == 0
        assert sample("topictag_messages_consumed_total") == 12
    finally:
        consumer.close(autocommit=False)


@pytest.fixture
def json_logs(monkeypatch):
    """setup_logging with TOPICTAG_LOG_FORMAT=json; the root logger is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("TOPICTAG_LOG_FORMAT", "json")
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_log_lines_carry_the_paper_and_the_adapter(json_logs, capsys, tmp_path):
    started = datetime.now(timezone.utc)
    setup_logging("trainer")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    registry = AdapterRegistry(store)
    registry.register("v1", adapter_dir(tmp_path, "v1"), base_model=BASE, metrics={}, training_config={},
                      label_snapshot={})
    registry.promote("v1", "better", BASE)
    store.close()
    logging.getLogger("topictag.tagger.worker").warning(
        "tagged %s", "2601.00001", extra={"arxiv_id": "2601.00001", "adapter_version": "v1"}
    )
    logging.getLogger("topictag.demo").info("no paper here")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert all({"ts", "level", "service", "logger", "message"} <= line.keys() for line in lines)
    assert all(line["service"] == "trainer" for line in lines)
    by_message = {line["message"]: line for line in lines}
    registered = by_message[next(m for m in by_message if m.startswith("registered adapter v1"))]
    assert (registered["logger"], registered["level"], registered["adapter_version"]) == (
        "topictag.adapters.registry", "INFO", "v1")
    assert by_message["promoted: production adapter is now v1"]["adapter_version"] == "v1"
    paper = by_message["tagged 2601.00001"]
    assert (paper["arxiv_id"], paper["adapter_version"], paper["level"]) == ("2601.00001", "v1", "WARNING")
    assert "arxiv_id" not in by_message["no paper here"]
    assert datetime.fromisoformat(paper["ts"]) >= started


def test_teacher_agreement_is_the_trainers_rouge_per_version(store):
    from topictag.status import teacher_agreement

    now = datetime.now(timezone.utc)

    def tagged(arxiv_id: str, topic: str, version: str) -> tuple[Paper, TagResult]:
        return (Paper(arxiv_id=arxiv_id, title="", abstract="An abstract long enough to be a paper."),
                TagResult(arxiv_id=arxiv_id, topic=topic, adapter_version=version, model="m", latency_ms=1, tagged_at=now))

    store.papers.save_tagged([
        tagged("a", "Graph Neural Networks", "v1"),  # the teacher's words: 100
        tagged("b", "Protein Folding", "v1"),  # no word in common: 0
        tagged("c", "Graph Learning", "base"),  # 1 of 2 words both ways: 50
        tagged("d", "Unlabelled Paper", "v1"),  # no teacher label: not counted
    ])
    store.teacher_labels.save([
        TeacherLabel(arxiv_id=i, abstract="x", topic=t, teacher_model="teacher", labelled_at=now)
        for i, t in (("a", "graph neural networks"), ("b", "Federated Learning Systems"), ("c", "Graph Theory"))
    ])
    assert teacher_agreement(store) == [("base", 1, pytest.approx(50.0, abs=0.01)), ("v1", 2, pytest.approx(50.0, abs=0.01))]
