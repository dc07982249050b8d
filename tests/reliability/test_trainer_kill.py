"""Fault: the trainer is SIGKILLed in the middle of a training, and its task is delivered
again (Celery's acks_late redelivers an unacknowledged task).

Must hold: no half-written adapter is visible, the registry has no row for it, the
single-flight lease lapses by itself, the redelivered task then trains (once: a third
delivery is a duplicate), what it registers is whole and checksummed, and the next
training removes the staging folder the killed one left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlmodel import Session

from tests.conftest import make_settings
from tests.e2e.test_stream import wait_until
from topictag.adapters.registry import AdapterRegistry, adapter_sha256
from topictag.settings import DistillSettings, TeacherSettings, TrainerSettings
from topictag.store.models import Lease, TeacherLabel, TrainingRun
from topictag.store import open_store
from topictag.trainer.pipeline import LEASE, TrainingPipeline

pytestmark = pytest.mark.model

LEASE_S = 4.0


class SharedEngine:
    """The session's engine for the pipeline's scoring; the pipeline closes its engine
    after use, which must not stop the session's."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def close(self):
        pass


def runs(store) -> list[TrainingRun]:
    return store.training_runs.latest(1000)


def lease_row(store) -> Lease | None:
    with Session(store.engine) as s:
        return s.get(Lease, LEASE)


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def test_trainer_killed_mid_training_leaves_nothing_half_written(tmp_path, bundle, teacher_labels, student_engine):
    # Small and fast: two top layers, short abstracts, batches of two.
    distill = DistillSettings(batch_size=2, max_abstract_tokens=64, lora_top_layers=2, warmup_steps=0, max_steps=2)
    settings = make_settings(tmp_path, teacher=TeacherSettings(labels_file=bundle / "teacher_labels.parquet"),
                             trainer=TrainerSettings(lease_s=LEASE_S, eval_fraction=0.25), distill=distill)
    store = open_store(settings.store_url)
    dev = teacher_labels.head(24)
    store.teacher_labels.save([
        TeacherLabel(arxiv_id=f"dev-{r.row}", abstract=r.abstract, topic=r.teacher_topic,
                     teacher_model="llama-70b", labelled_at=datetime.now(timezone.utc))
        for r in dev.itertuples()
    ])
    adapters = settings.adapters_dir

    # 1. `topictag train --wait` in its own process, training for far longer than we wait.
    env = os.environ | {
        "TOPICTAG_DATA_DIR": str(settings.paths.data_dir), "TOPICTAG_STORE_URL": settings.store_url,
        "TOPICTAG_TRAINER_LEASE_S": str(LEASE_S), "TOPICTAG_TRAINER_EVAL_FRACTION": "0.25",
        "TOPICTAG_DISTILL_MAX_STEPS": "100000", "TOPICTAG_DISTILL_BATCH_SIZE": "2",
        "TOPICTAG_DISTILL_MAX_ABSTRACT_TOKENS": "64", "TOPICTAG_DISTILL_LORA_TOP_LAYERS": "2",
        "TOPICTAG_DISTILL_WARMUP_STEPS": "0", "PYTHONUNBUFFERED": "1",
    }
    env.pop("TOPICTAG_KAFKA_BOOTSTRAP", None)
    log = tmp_path / "train.log"
    trainer = subprocess.Popen([sys.executable, "-m", "topictag", "train", "--wait"], env=env,
                               start_new_session=True, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        # The Trainer prints its loss every 10 steps: training is under way.
        wait_until(lambda: "'loss'" in log.read_text(errors="replace") or trainer.poll() is not None, 300,
                   f"training steps (log: {log})")
        assert trainer.poll() is None, f"the trainer exited early: {log.read_text(errors='replace')[-2000:]}"
        os.killpg(trainer.pid, signal.SIGKILL)
        trainer.wait(30)
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, signal.SIGKILL)
    killed_at = datetime.now(timezone.utc)

    # 2. What the crash left: a run row still "running", a lease about to lapse, no adapter.
    registry = AdapterRegistry(store)
    assert registry.list() == []
    [crashed] = runs(store)
    assert crashed.status == "running" and crashed.finished_at is None
    lease = lease_row(store)
    assert lease is not None and lease.holder.startswith(crashed.request_id)
    assert (_utc(lease.expires_at) - killed_at).total_seconds() <= LEASE_S  # renewals stopped with the process
    visible = [p.name for p in adapters.iterdir() if not p.name.startswith(".")] if adapters.exists() else []
    assert visible == []  # only a hidden staging folder may remain; nothing reads those
    staging = [p.name for p in adapters.iterdir() if p.name.startswith(".")] if adapters.exists() else []

    # 3. The task is delivered again (same request id) once the lease has lapsed: it trains.
    pipeline = TrainingPipeline(settings, store, registry, lambda: SharedEngine(student_engine))
    wait_until(lambda: datetime.now(timezone.utc) > _utc(lease_row(store).expires_at), 2 * LEASE_S, "the lease to lapse")
    try:
        outcome = pipeline.run(crashed.request_id)
    finally:
        student_engine.use_adapter(None)
    [run] = runs(store)  # the crashed run's row, finished now: no second row
    assert (outcome.request_id, outcome.status, outcome.version) == (crashed.request_id, run.status, run.version)
    assert run.status in ("promoted", "refused") and run.finished_at is not None, (run.status, run.detail)
    assert run.detail.startswith(("better", "not better", "BLEU-3 regressed"))  # the reason is recorded
    [row] = registry.list()
    assert row.version == run.version and row.status == {"promoted": "production", "refused": "refused"}[run.status]
    assert adapter_sha256(row.path) == row.sha256  # whole, and what was registered
    assert sorted(p.name for p in adapters.iterdir()) == [row.version]  # the staging folder was cleaned up
    assert lease_row(store) is None  # released

    # 4. Delivered a third time: a duplicate, nothing trains, nothing is registered.
    again = pipeline.run(crashed.request_id)
    assert again.status == "duplicate" and len(registry.list()) == 1
    print(f"killed mid-training; left behind: staging {staging}, registry rows 0; "
          f"redelivered: {run.status} {run.version} ({run.detail})")
    store.close()
