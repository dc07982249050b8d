"""Watching the distillation loop from the outside: teacher labels accumulating, a
training, a promotion, and the first paper tagged by the new adapter. Used by the demo
to print the loop's timeline; reads only the store."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from topictag.adapters.registry import AdapterRegistry
from topictag.store.models import PaperRecord, TeacherLabel, TrainingRun
from topictag.store.repository import Store

FINAL = ("promoted", "refused", "skipped", "failed")


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
        with Session(self.store.engine) as s:
            t.labels = s.exec(select(func.count()).select_from(TeacherLabel)).one()
            run = s.exec(select(TrainingRun).order_by(col(TrainingRun.id).desc())).first()
            if t.version and t.outcome == "promoted" and t.swap_s is None:
                tagged = s.exec(
                    select(func.count()).select_from(PaperRecord).where(PaperRecord.adapter_version == t.version)
                ).one()
                if tagged:
                    t.swap_s = self._at()
                    self.say(f"loop: the tagger serves {t.version}: {tagged} paper(s) tagged by it")
        if t.labels and t.first_label_s is None:
            t.first_label_s = self._at()
            self.say("loop: first teacher label stored")
        if run is not None and t.first_training_s is None:
            t.first_training_s = self._at()
            self.say(f"loop: training started on {run.n_train} labels ({run.n_eval} frozen for evaluation)")
        if run is not None and run.status in FINAL and t.outcome is None:
            t.training_done_s = self._at()
            t.outcome, t.version, t.detail = run.status, run.version, run.detail
            if run.version:
                row = AdapterRegistry(self.store).get(run.version)
                metrics = json.loads(row.metrics)
                t.before = metrics.get("incumbent", {})
                t.after = {k: v for k, v in metrics.items() if k not in ("incumbent", "incumbent_version")}
            if run.status == "promoted":
                t.promoted_s = t.training_done_s
            self.say(f"loop: training {run.status}{' ' + run.version if run.version else ''}: {run.detail}")
        return t
