"""One training, end to end: accumulated teacher labels -> LoRA adapter -> scored on the
frozen split against the incumbent -> registered, and promoted only if it is better.

Safe as a long, redelivered task: a request id runs once, a store lease keeps trainings
single-flight, and adapters appear only whole (distill writes them atomically).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, col, select

from topictag.adapters.registry import AdapterRegistry, as_engine_adapter, decide_promotion
from topictag.evaluation import score
from topictag.schemas import Paper
from topictag.settings import Settings
from topictag.store.models import TeacherLabel, TrainingRun
from topictag.store.repository import Store
from topictag.student.engine import StudentEngine
from topictag.trainer import lease

log = logging.getLogger(__name__)

LEASE = "training"
FINISHED = ("promoted", "refused", "skipped")


@dataclass(frozen=True)
class TrainingOutcome:
    request_id: str
    status: str
    detail: str
    version: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def labels_frame(store: Store) -> pd.DataFrame:
    """Every teacher label, oldest first, as training rows."""
    with Session(store.engine) as s:
        rows = s.exec(select(TeacherLabel).order_by(col(TeacherLabel.id))).all()
    return pd.DataFrame(
        [
            {"label_id": r.id, "arxiv_id": r.arxiv_id, "title": r.title, "abstract": r.abstract, "teacher_topic": r.topic}
            for r in rows
        ],
        columns=["label_id", "arxiv_id", "title", "abstract", "teacher_topic"],
    )


def last_trained_label_id(store: Store) -> int:
    with Session(store.engine) as s:
        return s.exec(
            select(func.coalesce(func.max(TrainingRun.last_label_id), 0)).where(
                col(TrainingRun.status).in_(("promoted", "refused"))
            )
        ).one()


def new_label_count(store: Store) -> tuple[int, int]:
    """(labels that arrived since the last finished training, newest label id)."""
    since = last_trained_label_id(store)
    with Session(store.engine) as s:
        newest = s.exec(select(func.coalesce(func.max(TeacherLabel.id), 0))).one()
        count = s.exec(select(func.count()).select_from(TeacherLabel).where(TeacherLabel.id > since)).one()
    return count, newest


def score_engine(engine: StudentEngine, frame: pd.DataFrame, batch_size: int = 32) -> dict:
    papers = [
        Paper(arxiv_id=str(r.get("arxiv_id") or f"row-{i}"), title=str(r.get("title") or ""), abstract=str(r["abstract"]))
        for i, r in enumerate(frame.to_dict(orient="records"))
    ]
    topics = []
    for i in range(0, len(papers), batch_size):
        topics += [p.topic for p in engine.predict(papers[i : i + batch_size])]
    return score(topics, frame["teacher_topic"].tolist())


class TrainingPipeline:
    def __init__(self, settings: Settings, store: Store, registry: AdapterRegistry, engine_factory):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.engine_factory = engine_factory  # evaluation engine, created only when a run trains

    def run(self, request_id: str) -> TrainingOutcome:
        holder = f"{request_id}:{uuid.uuid4().hex[:8]}"
        with lease.held(self.store, LEASE, holder, self.settings.trainer.lease_s) as got:
            existing = self._run_row(request_id)
            if existing is not None and (existing.status in FINISHED or not got):
                # Redelivered task (acks_late) or a repeated trigger: it trains once.
                log.info("training %s: duplicate (request already %s)", request_id, existing.status,
                         extra={"request_id": request_id, "status": "duplicate"})
                return TrainingOutcome(request_id, "duplicate", f"request already {existing.status}", existing.version)
            if not got:
                log.info("training %s: busy (another training holds the lock)", request_id,
                         extra={"request_id": request_id, "status": "busy"})
                return TrainingOutcome(request_id, "busy", "another training holds the lock")
            self._recover_interrupted()
            return self._train(request_id)

    def _recover_interrupted(self) -> None:
        """With the lease held no other training runs: a "running" row or a staging folder
        is what a killed worker left behind. The row is marked failed (its request trains
        again when redelivered or re-triggered); the half-written adapter is deleted."""
        with Session(self.store.engine) as s:
            for run in s.exec(select(TrainingRun).where(TrainingRun.status == "running")).all():
                run.status, run.finished_at = "failed", _now()
                run.detail = "interrupted: the worker stopped before the training finished"
                s.add(run)
                log.warning("training %s was interrupted; marked failed", run.request_id,
                            extra={"request_id": run.request_id})
            s.commit()
        adapters = self.settings.adapters_dir
        for staging in adapters.glob(".*") if adapters.is_dir() else ():
            if staging.is_dir():  # distill stages into .<version>-XXXX and renames when whole
                log.warning("removing %s, left by an interrupted training", staging)
                shutil.rmtree(staging, ignore_errors=True)

    def _train(self, request_id: str) -> TrainingOutcome:
        from topictag.distill.dataset import split_labels
        from topictag.distill.train import distill

        labels = labels_frame(self.store)
        newest = int(labels["label_id"].max()) if len(labels) else 0
        train, frozen = split_labels(labels, self.settings.trainer.eval_fraction)
        run = self._start_run(request_id, len(train), len(frozen), newest)
        if len(train) == 0 or len(frozen) == 0:
            return self._finish(run, "skipped", f"not enough labels ({len(train)} to train, {len(frozen)} to evaluate)")
        version = self.registry.next_version()
        out = self.settings.adapters_dir / version
        if out.exists():  # left by a run that crashed before registering: never visible
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = self.engine_factory()
            result = distill(self.settings, train, out, eval=frozen, engine=engine)
            production = self.registry.production()
            engine.use_adapter(as_engine_adapter(production) if production else None)
            incumbent = score_engine(engine, frozen)
            engine.close()
        except Exception as exc:
            self._finish(run, "failed", f"{exc.__class__.__name__}: {exc}")
            raise
        row = self.registry.register(
            version,
            out,
            base_model=self.settings.student.model_name,
            metrics=result.metrics | {"incumbent": incumbent, "incumbent_version": production.version if production else "base"},
            training_config=result.train_config,
            label_snapshot={"n_train": len(train), "n_eval": len(frozen), "last_label_id": newest},
        )
        decision = decide_promotion(
            result.metrics,
            incumbent,
            min_rouge_gain=self.settings.trainer.promote_min_rouge_gain,
            max_bleu_drop=self.settings.trainer.promote_max_bleu_drop,
        )
        if decision.promote:
            self.registry.promote(row.version, decision.reason, self.settings.student.model_name)
            return self._finish(run, "promoted", decision.reason, row.version)
        self.registry.refuse(row.version, decision.reason)
        return self._finish(run, "refused", decision.reason, row.version)

    def _run_row(self, request_id: str) -> TrainingRun | None:
        with Session(self.store.engine) as s:
            return s.exec(select(TrainingRun).where(TrainingRun.request_id == request_id)).first()

    def _start_run(self, request_id: str, n_train: int, n_eval: int, newest: int) -> TrainingRun:
        with Session(self.store.engine) as s:
            # A run left "failed" by a crash is retried under the same request id.
            run = s.exec(select(TrainingRun).where(TrainingRun.request_id == request_id)).first() or TrainingRun(
                request_id=request_id, started_at=_now(), status="running"
            )
            run.status, run.n_train, run.n_eval, run.last_label_id = "running", n_train, n_eval, newest
            run.started_at, run.finished_at, run.detail = _now(), None, ""
            s.add(run)
            s.commit()
            s.refresh(run)
            return run

    def _finish(self, run: TrainingRun, status: str, detail: str, version: str | None = None) -> TrainingOutcome:
        # expire_on_commit=False: the row is read after its session is closed.
        with Session(self.store.engine, expire_on_commit=False) as s:
            run = s.get(TrainingRun, run.id)
            run.status, run.detail, run.version, run.finished_at = status, detail, version, _now()
            s.add(run)
            s.commit()
        log.info("training %s: %s (%s)", run.request_id, status, detail,
                 extra={"request_id": run.request_id, "status": status, "adapter_version": version})
        return TrainingOutcome(run.request_id, status, detail, version)
