"""Adapter versions: list them, and (with an API key) promote, roll back, train, re-tag.
Each action runs the same code as the CLI."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from topictag.adapters.registry import AdapterRefused
from topictag.gateway.auth import AUTH_ERRORS, ApiKeyDep
from topictag.gateway.deps import SettingsDep, StoreDep
from topictag.gateway.protocol import datetime, errors
from topictag.lifecycle import AdapterStatus
from topictag.store.models import AdapterVersion

router = APIRouter(prefix="/v1/models", tags=["models"])


class AdapterOut(BaseModel):
    version: str = Field(examples=["v3"])
    status: str = Field(examples=["production"])
    base_model: str
    metrics: dict = Field(examples=[{"bleu3": 35.1, "rouge1_f": 53.0}])
    training_config: dict
    label_snapshot: dict
    reason: str
    created_at: datetime
    promoted_at: datetime | None

    @classmethod
    def of(cls, row: AdapterVersion) -> AdapterOut:
        return cls(
            version=row.version, status=row.status, base_model=row.base_model,
            metrics=json.loads(row.metrics), training_config=json.loads(row.training_config),
            label_snapshot=json.loads(row.label_snapshot), reason=row.reason,
            created_at=row.created_at, promoted_at=row.promoted_at,
        )


class ModelsOut(BaseModel):
    production: str | None = Field(description="Version in production; null: the base model.")
    adapters: list[AdapterOut]


class TrainingOut(BaseModel):
    request_id: str
    status: str
    version: str | None
    detail: str
    n_train: int
    n_eval: int
    started_at: datetime
    finished_at: datetime | None


class Queued(BaseModel):
    request_id: str | None = None
    detail: str


def _registry(request: Request):
    return request.app.state.registry()


@router.get("", response_model=ModelsOut)
def list_models(request: Request) -> ModelsOut:
    """Every adapter version, oldest first, with its scores and status."""
    rows = _registry(request).list()
    production = next((r.version for r in rows if r.status == AdapterStatus.PRODUCTION), None)
    return ModelsOut(production=production, adapters=[AdapterOut.of(r) for r in rows])


@router.get("/trainings", response_model=list[TrainingOut])
def list_trainings(store: StoreDep) -> list[TrainingOut]:
    """Training runs, newest first."""
    return [TrainingOut.model_validate(r, from_attributes=True) for r in store.training_runs.latest(100)]


@router.post(
    "/{version}/promote",
    response_model=AdapterOut,
    responses=AUTH_ERRORS | errors(_404="No such version", _409="Refused: checksum or base model does not match"),
)
def promote(
    version: Annotated[str, Path(max_length=32, pattern=r"^v\d+$")], request: Request, settings: SettingsDep, _: ApiKeyDep
) -> AdapterOut:
    """Put a version in production; taggers switch within seconds."""
    registry = _registry(request)
    if registry.get(version) is None:
        raise HTTPException(404, f"no adapter version {version!r}")
    try:
        return AdapterOut.of(registry.promote(version, "promoted through the gateway", settings.student.model_name))
    except AdapterRefused as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/rollback", response_model=ModelsOut, responses=AUTH_ERRORS | errors(_409="Nothing to roll back"))
def rollback(request: Request, _: ApiKeyDep) -> ModelsOut:
    """Retire the production adapter and restore the one before it (or the base model)."""
    try:
        _registry(request).rollback("rolled back through the gateway")
    except AdapterRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return list_models(request)


@router.post("/train", response_model=Queued, status_code=202, responses=AUTH_ERRORS)
def train(request: Request, _: ApiKeyDep) -> Queued:
    """Queue a training on the accumulated teacher labels."""
    from topictag.trainer.celery_app import request_training

    request_id = request_training(request.app.state.celery())
    return Queued(request_id=request_id, detail="training queued; see /v1/models/trainings")


@router.post("/retag", response_model=Queued, status_code=202, responses=AUTH_ERRORS)
def retag(request: Request, _: ApiKeyDep) -> Queued:
    """Queue a re-tag of papers tagged by older adapter versions."""
    from topictag.trainer.celery_app import RETAG

    request.app.state.celery().send_task(RETAG)
    return Queued(detail="re-tag job queued")
