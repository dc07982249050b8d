from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from topictag.gateway.deps import SettingsDep, StoreDep
from topictag.gateway.protocol import Readiness

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(store: StoreDep, settings: SettingsDep):
    """The store and the broker answer."""
    checks = {"store": "ok", "broker": "ok"}
    try:
        store.ping()
    except Exception as exc:  # any failure means not ready; the kind is enough for an operator
        checks["store"] = f"unavailable ({exc.__class__.__name__})"
    if not settings.kafka.bootstrap:
        checks["broker"] = "not configured (TOPICTAG_KAFKA_BOOTSTRAP is unset)"
    else:
        from topictag.bus.kafka import make_admin

        try:
            # A probe must answer fast: kafka-python waits 30 s for a bootstrap by default.
            make_admin(settings.kafka, bootstrap_timeout_ms=2000).close()
        except Exception as exc:
            checks["broker"] = f"unavailable ({exc.__class__.__name__})"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
