"""Watching the distillation loop from the outside: teacher labels accumulating, a
training, a promotion, and the first paper tagged by the new adapter. Used by the demo
to print the loop's timeline; reads only the store."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from topictag.lifecycle import TrainingStatus
from topictag.store import Store


@dataclass
class LoopTimeline:
    """Seconds since the demo started at which each milestone was first seen."""

    first_label_s: float | None = None
    first_training_s: float | None = None
    training_done_s: float | None = None
    promoted_s: float | None = None
    swap_s: float | None = None
    outcome: str | None = None
    version: str | None = None
    detail: str = ""
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    labels: int = 0

    @property
    def finished(self) -> bool:
        """The training ended; if it promoted, a paper was tagged by the new adapter."""
        if self.outcome is None:
            return False
        return self.outcome != "promoted" or self.swap_s is not None


class LoopWatch:
    def __init__(self, store: Store, started: float, say):
        self.store = store
        self.started = started
        self.say = say
        self.timeline = LoopTimeline()

    def _at(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def look(self) -> LoopTimeline:
        t = self.timeline
        t.labels = self.store.teacher_labels.count()
        latest = self.store.training_runs.latest(1)
        run = latest[0] if latest else None
        if t.version and t.outcome == TrainingStatus.PROMOTED and t.swap_s is None:
            tagged = self.store.papers.count_tagged(adapter_version=t.version)
            if tagged:
                t.swap_s = self._at()
                self.say(f"loop: the tagger serves {t.version}: {tagged} paper(s) tagged by it")
        if t.labels and t.first_label_s is None:
            t.first_label_s = self._at()
            self.say("loop: first teacher label stored")
        if run is not None and t.first_training_s is None:
            t.first_training_s = self._at()
            self.say(f"loop: training started on {run.n_train} labels ({run.n_eval} frozen for evaluation)")
        if run is not None and TrainingStatus(run.status).ended and t.outcome is None:
            t.training_done_s = self._at()
            t.outcome, t.version, t.detail = run.status, run.version, run.detail
            if run.version:
                row = self.store.adapters.get(run.version)
                assert row is not None  # an ended run with a version registered it
                metrics = json.loads(row.metrics)
                t.before = metrics.get("incumbent", {})
                t.after = {k: v for k, v in metrics.items() if k not in ("incumbent", "incumbent_version")}
            if run.status == TrainingStatus.PROMOTED:
                t.promoted_s = t.training_done_s
            self.say(f"loop: training {run.status}{' ' + run.version if run.version else ''}: {run.detail}")
        return t
