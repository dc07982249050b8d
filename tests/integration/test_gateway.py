"""The HTTP API over a real store (SQLite and PostgreSQL)."""

from datetime import date

import pytest
from fastapi.testclient import TestClient

from topictag.gateway.app import create_app
from topictag.settings import KafkaSettings, Settings
from tests.integration.test_store import tagged


@pytest.fixture
def client(store, broker):
    settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap))
    store.papers.save_tagged([tagged(i, "Federated Learning" if i % 2 else "Graph Neural Networks") for i in range(12)])
    store.papers.save_tagged([tagged(3, "Private Federated Learning", "v1", minutes=100)])
    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as c:
        yield c


def test_get_paper_with_history(client):
    body = client.get("/v1/papers/2601.00003").json()
    assert body["topic"] == "Private Federated Learning"
    assert body["adapter_version"] == "v1"
    assert body["categories"] == ["cs.LG"]
    assert [h["adapter_version"] for h in body["history"]] == ["base", "v1"]


def test_unknown_paper_is_404_with_reason(client):
    r = client.get("/v1/papers/9999.99999")
    assert r.status_code == 404
    assert "9999.99999" in r.json()["detail"]


def test_list_filters_and_pages(client):
    first = client.get("/v1/papers", params={"limit": 5}).json()
    assert len(first["items"]) == 5
    assert first["items"][0]["arxiv_id"] == "2601.00003"  # re-tagged last: newest
    ids = [p["arxiv_id"] for p in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get("/v1/papers", params={"limit": 5, "cursor": cursor}).json()
        ids += [p["arxiv_id"] for p in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(ids) == sorted(f"2601.{i:05d}" for i in range(12))
    fed = client.get("/v1/papers", params={"topic": "federated"}).json()["items"]
    assert len(fed) == 6 and all("Federated" in p["topic"] for p in fed)
    dated = client.get("/v1/papers", params={"published_from": "2026-01-05", "published_to": "2026-01-06"}).json()
    assert dated["items"] and all(date(2026, 1, 5) <= date.fromisoformat(p["published"]) <= date(2026, 1, 6) for p in dated["items"])
    assert client.get("/v1/papers", params={"adapter_version": "v1"}).json()["items"][0]["arxiv_id"] == "2601.00003"


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"limit": 0}, 422, "limit"),
        ({"limit": 10_000}, 422, "less than or equal to 200"),
        ({"limit": "many"}, 422, "limit"),
        ({"cursor": "garbage"}, 400, "cursor"),
        ({"published_from": "2026-13-45"}, 422, "published_from"),
        ({"published_from": "2026-02-01", "published_to": "2026-01-01"}, 422, "after"),
        ({"topic": "x" * 201}, 422, "topic"),
    ],
)
def test_bad_list_requests_say_what_is_wrong(client, params, status, says):
    r = client.get("/v1/papers", params=params)
    assert r.status_code == status
    assert says in r.text
    assert "Traceback" not in r.text


def test_topic_counts(client):
    items = client.get("/v1/topics").json()["items"]
    assert {"topic": "Graph Neural Networks", "papers": 6} in items
    assert sum(i["papers"] for i in items) == 12


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"store": "ok", "broker": "ok"}


def test_not_ready_without_a_broker(store):
    from topictag.bus.embedded import free_port

    settings = Settings(kafka=KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"))
    with TestClient(create_app(settings, store=store)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["store"] == "ok"
    assert r.json()["checks"]["broker"].startswith("unavailable")


def test_openapi_documents_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/papers", "/v1/papers/{arxiv_id}", "/v1/topics", "/healthz", "/readyz"} <= set(paths)


@pytest.mark.parametrize("read_cache_s, fresh_at_once", [(60.0, False), (0.0, True)])
def test_identical_reads_share_one_answer_for_read_cache_s(store, broker, read_cache_s, fresh_at_once):
    """A paper tagged meanwhile shows up once the shared answer expires; with the cache off, at once."""
    from topictag.settings import GatewaySettings

    store.papers.save_tagged([tagged(i, "Federated Learning") for i in range(3)])
    settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap), gateway=GatewaySettings(read_cache_s=read_cache_s))
    with TestClient(create_app(settings, store=store)) as c:
        before = [p["arxiv_id"] for p in c.get("/v1/papers", params={"topic": "federated"}).json()["items"]]
        store.papers.save_tagged([tagged(3, "Federated Learning")])
        after = [p["arxiv_id"] for p in c.get("/v1/papers", params={"topic": "federated"}).json()["items"]]
        other_query = c.get("/v1/papers", params={"topic": "federated", "limit": 10}).json()["items"]
    assert before == ["2601.00002", "2601.00001", "2601.00000"]
    assert after == (["2601.00003", *before] if fresh_at_once else before)
    assert len(other_query) == 4  # another query is its own entry
