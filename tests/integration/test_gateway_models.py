"""Adapter versions through the gateway: listing, and write actions behind API keys."""

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_registry import BASE, register
from topictag.adapters.registry import AdapterRegistry
from topictag.gateway.app import create_app
from topictag.gateway.auth import create_key, revoke_key
from topictag.settings import Settings, StudentSettings


@pytest.fixture
def client(store, kafka, tmp_path):
    from topictag.settings import PathSettings

    settings = Settings(kafka=kafka, student=StudentSettings(model_name=BASE), paths=PathSettings(data_dir=tmp_path))
    registry = AdapterRegistry(store)
    register(registry, tmp_path, rouge=40.0)
    register(registry, tmp_path, rouge=45.0)
    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as c:
        c.key = create_key(store, "ops")
        c.store = store
        yield c


def test_list_models(client):
    body = client.get("/v1/models").json()
    assert body["production"] is None
    assert [(a["version"], a["status"], a["metrics"]["rouge1_f"]) for a in body["adapters"]] == [
        ("v1", "candidate", 40.0), ("v2", "candidate", 45.0)
    ]


@pytest.mark.parametrize("path", ["/v1/models/v1/promote", "/v1/models/rollback", "/v1/models/train", "/v1/models/retag"])
def test_write_endpoints_need_a_valid_key(client, path):
    assert client.post(path).status_code == 401
    r = client.post(path, headers={"X-API-Key": "tt_wrong"})
    assert r.status_code == 403 and "not valid" in r.json()["detail"]
    revoke_key(client.store, "ops")
    assert client.post(path, headers={"X-API-Key": client.key}).status_code == 403


def test_promote_and_rollback(client):
    h = {"X-API-Key": client.key}
    r = client.post("/v1/models/v2/promote", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "production"
    assert client.get("/v1/models").json()["production"] == "v2"
    assert client.post("/v1/models/v9/promote", headers=h).status_code == 404
    assert client.post("/v1/models/latest/promote", headers=h).status_code == 422
    assert client.post("/v1/models/rollback", headers=h).json()["production"] is None
    r = client.post("/v1/models/rollback", headers=h)
    assert r.status_code == 409 and "nothing to roll back" in r.json()["detail"]


def test_refused_promotion_says_why(client, tmp_path):
    (tmp_path / "v1" / "adapter_model.safetensors").write_bytes(b"corrupted")
    r = client.post("/v1/models/v1/promote", headers={"X-API-Key": client.key})
    assert r.status_code == 409 and "checksum" in r.json()["detail"]


def test_train_is_queued(client, tmp_path):
    r = client.post("/v1/models/train", headers={"X-API-Key": client.key})
    assert r.status_code == 202
    assert r.json()["request_id"].startswith("manual-")
    # The filesystem transport (no Redis configured) holds the task for a trainer worker.
    assert any((tmp_path / "celery" / "queue").iterdir())
    assert client.get("/v1/models/trainings").json() == []


def test_metrics_show_the_production_adapter_and_trainings(client):
    """The trainer runs elsewhere; its outcomes reach Prometheus through the gateway, read
    from the store at scrape time."""
    from datetime import datetime, timezone

    from sqlmodel import Session

    from topictag.store.models import TrainingRun

    text = client.get("/metrics").text
    assert 'topictag_production_adapter{score="none",version="base"} 0.0' in text
    assert "topictag_teacher_labels_stored 0.0" in text and "topictag_papers_parked_now 0.0" in text
    assert client.post("/v1/models/v2/promote", headers={"X-API-Key": client.key}).status_code == 200
    with Session(client.store.engine) as s:
        now = datetime.now(timezone.utc)
        s.add_all([TrainingRun(request_id="a", status="promoted", started_at=now),
                   TrainingRun(request_id="b", status="refused", started_at=now),
                   TrainingRun(request_id="c", status="refused", started_at=now)])
        s.commit()
    text = client.get("/metrics").text
    assert 'topictag_production_adapter{score="rouge1_f",version="v2"} 45.0' in text
    assert 'topictag_production_adapter{score="bleu3",version="v2"} 30.0' in text
    assert 'topictag_training_runs{status="refused"} 2.0' in text
    assert 'topictag_training_runs{status="promoted"} 1.0' in text
    assert "topictag_http_request_seconds" in text  # the process's own metrics are still there
