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

from topictag.adapters.registry import AdapterRegistry, as_engine_adapter
from topictag.evaluation import score_engine
from topictag.lifecycle import TrainingStatus, decide_promotion
from topictag.settings import Settings
from topictag.store import Store
from topictag.store.leases import held
from topictag.store.models import TrainingRun

log = logging.getLogger(__name__)

LEASE = "training"


@dataclass(frozen=True)
class TrainingOutcome:
    request_id: str
    status: str
    detail: str
    version: str | None = None


def new_label_count(store: Store) -> tuple[int, int]:
    """(labels that arrived since the last finished training, newest label id)."""
    labels = store.teacher_labels
    return labels.count(after_id=store.training_runs.last_trained_label_id()), labels.newest_id()


class TrainingPipeline:
    def __init__(self, settings: Settings, store: Store, registry: AdapterRegistry, engine_factory):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.engine_factory = engine_factory  # evaluation engine, created only when a run trains

    def run(self, request_id: str) -> TrainingOutcome:
        holder = f"{request_id}:{uuid.uuid4().hex[:8]}"
        with held(self.store.leases, LEASE, holder, self.settings.trainer.lease_s) as got:
            existing = self.store.training_runs.by_request(request_id)
            if existing is not None and (TrainingStatus(existing.status).done or not got):
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
        for request_id in self.store.training_runs.fail_running("interrupted: the worker stopped before the training finished"):
            log.warning("training %s was interrupted; marked failed", request_id, extra={"request_id": request_id})
        adapters = self.settings.adapters_dir
        for staging in adapters.glob(".*") if adapters.is_dir() else ():
            if staging.is_dir():  # distill stages into .<version>-XXXX and renames when whole
                log.warning("removing %s, left by an interrupted training", staging)
                shutil.rmtree(staging, ignore_errors=True)

    def _train(self, request_id: str) -> TrainingOutcome:
        from topictag.distill.dataset import split_labels
        from topictag.distill.train import distill

        labels = self.store.teacher_labels.training_frame()
        newest = int(labels["label_id"].max()) if len(labels) else 0
        train, frozen = split_labels(labels, self.settings.trainer.eval_fraction)
        run = self.store.training_runs.start(request_id, len(train), len(frozen), newest)
        if len(train) == 0 or len(frozen) == 0:
            return self._finish(run, TrainingStatus.SKIPPED, f"not enough labels ({len(train)} to train, {len(frozen)} to evaluate)")
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
            self._finish(run, TrainingStatus.FAILED, f"{exc.__class__.__name__}: {exc}")
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
            return self._finish(run, TrainingStatus.PROMOTED, decision.reason, row.version)
        self.registry.refuse(row.version, decision.reason)
        return self._finish(run, TrainingStatus.REFUSED, decision.reason, row.version)

    def _finish(self, run: TrainingRun, status: TrainingStatus, detail: str, version: str | None = None) -> TrainingOutcome:
        assert run.id is not None  # a stored run (training_runs.start)
        run = self.store.training_runs.finish(run.id, status, detail, version)
        log.info("training %s: %s (%s)", run.request_id, status, detail,
                 extra={"request_id": run.request_id, "status": str(status), "adapter_version": version})
        return TrainingOutcome(run.request_id, str(status), detail, version)
