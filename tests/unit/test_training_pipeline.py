"""The training pipeline's bookkeeping against in-memory fakes of the store's repositories
(training runs, teacher labels, leases): a request trains once, a held lease means busy,
too few labels is a skip, a failure is recorded and may train again, and what a killed
worker left is cleaned up. (Training itself: tests/e2e and tests/reliability.)"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd
import pytest

from topictag.lifecycle import TrainingStatus, decide_promotion
from topictag.settings import PathSettings, Settings
from topictag.store.models import TrainingRun
from topictag.store.teacher_labels import TRAINING_COLUMNS
from topictag.trainer.pipeline import LEASE, TrainingPipeline, new_label_count


class TrainingRuns:
    def __init__(self):
        self.rows: dict[str, TrainingRun] = {}
        self._ids = itertools.count(1)

    def by_request(self, request_id):
        return self.rows.get(request_id)

    def start(self, request_id, n_train, n_eval, last_label_id):
        run = self.rows.get(request_id) or TrainingRun(id=next(self._ids), request_id=request_id,
                                                       started_at=datetime.now(UTC), status=TrainingStatus.RUNNING)
        run.status, run.n_train, run.n_eval, run.last_label_id = TrainingStatus.RUNNING, n_train, n_eval, last_label_id
        self.rows[request_id] = run
        return run

    def finish(self, run_id, status, detail, version=None):
        run = next(r for r in self.rows.values() if r.id == run_id)
        run.status, run.detail, run.version, run.finished_at = status, detail, version, datetime.now(UTC)
        return run

    def fail_running(self, detail):
        left = [r for r in self.rows.values() if r.status == TrainingStatus.RUNNING]
        for run in left:
            run.status, run.detail = TrainingStatus.FAILED, detail
        return [r.request_id for r in left]

    def last_trained_label_id(self):
        done = [r.last_label_id for r in self.rows.values() if r.status in (TrainingStatus.PROMOTED, TrainingStatus.REFUSED)]
        return max(done, default=0)


class TeacherLabels:
    def __init__(self, n: int):
        self.frame = pd.DataFrame(
            [(i + 1, f"2501.{i:05d}", "", f"An abstract about subject {i}.", f"Topic {i}") for i in range(n)],
            columns=TRAINING_COLUMNS,
        )

    def training_frame(self):
        return self.frame.copy()

    def count(self, after_id=0):
        return int((self.frame["label_id"] > after_id).sum())

    def newest_id(self):
        return int(self.frame["label_id"].max()) if len(self.frame) else 0


class Leases:
    def __init__(self):
        self.holders: dict[str, str] = {}

    def acquire(self, name, holder, ttl_s):
        if self.holders.get(name, holder) != holder:
            return False
        self.holders[name] = holder
        return True

    def release(self, name, holder):
        if self.holders.get(name) == holder:
            del self.holders[name]


class Registry:
    """Asked for a version only when a run gets as far as training."""

    def __init__(self):
        self.asked = 0

    def next_version(self):
        self.asked += 1
        return f"v{self.asked}"


def pipeline(tmp_path, labels: int, engine_factory=None):
    store = SimpleNamespace(training_runs=TrainingRuns(), teacher_labels=TeacherLabels(labels), leases=Leases())
    settings = Settings(paths=PathSettings(data_dir=tmp_path))
    return TrainingPipeline(settings, store, Registry(), engine_factory or (lambda: pytest.fail("no engine expected")))


def test_too_few_labels_is_a_skip_and_a_request_trains_once(tmp_path):
    p = pipeline(tmp_path, labels=1)
    outcome = p.run("r1")
    assert (outcome.status, p.registry.asked) == ("skipped", 0)
    assert "not enough labels" in p.store.training_runs.rows["r1"].detail
    assert p.run("r1").status == "duplicate"  # skipped is final for its request id
    assert p.store.leases.holders == {}  # released


def test_busy_while_another_training_holds_the_lease(tmp_path):
    p = pipeline(tmp_path, labels=40)
    p.store.leases.acquire(LEASE, "someone-else", 60)
    assert p.run("r1").status == "busy"
    assert p.store.training_runs.rows == {}


def test_a_failed_training_is_recorded_and_its_request_may_train_again(tmp_path):
    def broken_engine():
        raise RuntimeError("no memory left")

    p = pipeline(tmp_path, labels=40, engine_factory=broken_engine)
    with pytest.raises(RuntimeError):
        p.run("r1")
    run = p.store.training_runs.rows["r1"]
    assert run.status == TrainingStatus.FAILED and run.detail == "RuntimeError: no memory left"
    assert run.n_train + run.n_eval == 40 and run.n_eval > 0
    with pytest.raises(RuntimeError):  # failed is not final: the redelivered task trains again
        p.run("r1")
    assert p.registry.asked == 2


def test_what_a_killed_training_left_is_cleaned_up_first(tmp_path):
    p = pipeline(tmp_path, labels=1)
    p.store.training_runs.start("killed", 10, 2, 7)
    staging = p.settings.adapters_dir / ".v1-half-written"
    staging.mkdir(parents=True)
    p.run("r2")
    assert p.store.training_runs.rows["killed"].status == TrainingStatus.FAILED
    assert "interrupted" in p.store.training_runs.rows["killed"].detail
    assert not staging.exists()


def test_new_labels_count_from_the_last_promoted_or_refused_training(tmp_path):
    p = pipeline(tmp_path, labels=30)
    assert new_label_count(p.store) == (30, 30)
    p.store.training_runs.start("done", 20, 5, 25)
    p.store.training_runs.finish(1, TrainingStatus.REFUSED, "not better")
    p.store.training_runs.start("crashed", 20, 5, 30)
    p.store.training_runs.finish(2, TrainingStatus.FAILED, "boom")  # a failure does not count as seen
    assert new_label_count(p.store) == (5, 30)


@pytest.mark.parametrize(
    ("candidate", "incumbent", "promote"),
    [
        ({"rouge1_f": 45.0, "bleu3": 30.0}, {"rouge1_f": 40.0, "bleu3": 30.0}, True),
        ({"rouge1_f": 40.2, "bleu3": 30.0}, {"rouge1_f": 40.0, "bleu3": 30.0}, False),  # under the margin
        ({"rouge1_f": 45.0, "bleu3": 25.0}, {"rouge1_f": 40.0, "bleu3": 30.0}, False),  # BLEU-3 regressed
        ({"rouge1_f": 45.0, "bleu3": 29.5}, {"rouge1_f": 40.0, "bleu3": 30.0}, True),  # within the allowed drop
    ],
)
def test_promotion_rule(candidate, incumbent, promote):
    decision = decide_promotion(candidate, incumbent, min_rouge_gain=0.5, max_bleu_drop=1.0)
    assert decision.promote is promote
    assert "ROUGE-1 F" in decision.reason
