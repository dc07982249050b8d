"""Training runs: one row per training request, so a request delivered twice trains once."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from topictag.lifecycle import TRAINED, TrainingStatus
from topictag.store.engine import utcnow
from topictag.store.models import TrainingRun


class TrainingRunRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def by_request(self, request_id: str) -> TrainingRun | None:
        with Session(self.engine) as s:
            return s.exec(select(TrainingRun).where(TrainingRun.request_id == request_id)).first()

    def latest(self, limit: int = 1) -> list[TrainingRun]:
        """The newest runs, newest first."""
        with Session(self.engine) as s:
            return list(s.exec(select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(limit)).all())

    def count_by_status(self) -> dict[str, int]:
        with Session(self.engine) as s:
            return dict(s.exec(select(TrainingRun.status, func.count()).group_by(TrainingRun.status)).all())

    def last_trained_label_id(self) -> int:
        """The newest teacher label a promoted or refused training saw (0: none)."""
        query = select(func.coalesce(func.max(TrainingRun.last_label_id), 0)).where(col(TrainingRun.status).in_(TRAINED))
        with Session(self.engine) as s:
            return s.exec(query).one()

    def start(self, request_id: str, n_train: int, n_eval: int, last_label_id: int) -> TrainingRun:
        """Mark ``request_id`` running (a run left failed by a crash is retried under its id)."""
        with Session(self.engine, expire_on_commit=False) as s:
            run = s.exec(select(TrainingRun).where(TrainingRun.request_id == request_id)).first() or TrainingRun(
                request_id=request_id, started_at=utcnow(), status=TrainingStatus.RUNNING
            )
            run.status, run.n_train, run.n_eval, run.last_label_id = TrainingStatus.RUNNING, n_train, n_eval, last_label_id
            run.started_at, run.finished_at, run.detail = utcnow(), None, ""
            s.add(run)
            s.commit()
            return run

    def finish(self, run_id: int, status: TrainingStatus, detail: str, version: str | None = None) -> TrainingRun:
        with Session(self.engine, expire_on_commit=False) as s:
            run = s.get(TrainingRun, run_id)
            if run is None:
                raise LookupError(f"no training run {run_id}")
            run.status, run.detail, run.version, run.finished_at = status, detail, version, utcnow()
            s.add(run)
            s.commit()
            return run

    def fail_running(self, detail: str) -> list[str]:
        """Mark every running run failed (what a killed worker left); their request ids."""
        with Session(self.engine) as s:
            runs = s.exec(select(TrainingRun).where(TrainingRun.status == TrainingStatus.RUNNING)).all()
            for run in runs:
                run.status, run.finished_at, run.detail = TrainingStatus.FAILED, utcnow(), detail
                s.add(run)
            ids = [run.request_id for run in runs]
            s.commit()
        return ids
