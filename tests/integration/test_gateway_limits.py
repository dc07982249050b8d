"""The gateway's edges, on SQLite and PostgreSQL: request and field size limits, API keys on
reads, hostile query strings, path traversal, wrong types, pagination edges, internal
errors, CORS, and papers sent over HTTP reaching the papers topic."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_store import tagged
from topictag.gateway.app import create_app
from topictag.gateway.auth import create_key
from topictag.settings import GatewaySettings, KafkaSettings, PaperLimits, PathSettings, Settings
from topictag.store.models import PaperRecord

N = 12


def populate(store) -> None:
    store.papers.save_tagged([tagged(i, "Federated Learning" if i % 2 else "Graph Neural Networks") for i in range(N)])


def make_client(store, tmp_path, **gateway) -> TestClient:
    settings = Settings(
        kafka=KafkaSettings(bootstrap=None),
        paths=PathSettings(data_dir=tmp_path / "data"),
        gateway=GatewaySettings(**gateway),
    )
    client = TestClient(create_app(settings, store=store), raise_server_exceptions=False)
    client.key = create_key(store, f"k{len(gateway)}-{id(client)}")
    return client


@pytest.fixture
def client(store, tmp_path):
    populate(store)
    with make_client(store, tmp_path) as c:
        c.store = store
        yield c


def paper(i: int = 1, **fields) -> dict:
    return {"arxiv_id": f"2611.{i:05d}", "title": "A title", "abstract": "An abstract.", "categories": ["cs.LG"],
            "published": "2026-11-01"} | fields


# -- request body size ------------------------------------------------------------------


def test_body_over_the_limit_is_413_before_parsing(store, tmp_path):
    with make_client(store, tmp_path, max_body_bytes=2048) as c:
        h = {"X-API-Key": c.key, "Content-Type": "application/json"}
        r = c.post("/v1/papers", content=b"{" + b" " * 4096, headers=h)  # not even JSON: never parsed
        assert r.status_code == 413
        assert r.json() == {"detail": "request body is over the 2048-byte limit (2048 bytes)", "limit_bytes": 2048}
        # Without a length up front (chunked), counted as it arrives.
        r = c.post("/v1/papers", content=iter([b"{", b" " * 4096]), headers=h)
        assert r.status_code == 413 and "2048-byte limit" in r.json()["detail"]
        # Under the limit, chunked or not, the body goes on to the API (no broker here: 503).
        body = json.dumps({"papers": [paper()]}).encode()
        assert c.post("/v1/papers", content=body, headers=h).status_code == 503
        assert c.post("/v1/papers", content=iter([body[:10], body[10:]]), headers=h).status_code == 503


def test_default_limit_is_one_mib(client):
    r = client.post("/v1/papers", content=b"x" * (1024 * 1024 + 1), headers={"X-API-Key": client.key})
    assert r.status_code == 413 and "1048576-byte limit (1 MiB)" in r.json()["detail"]


# -- ingest: field and batch limits -----------------------------------------------------


@pytest.mark.parametrize(
    ("papers", "says"),
    [
        ([paper(abstract="x" * 10_001)], "at most 10000 characters"),
        ([paper(title="t" * 1_001)], "at most 1000 characters"),
        ([paper(arxiv_id="1" * 65)], "at most 64 characters"),
        ([paper(arxiv_id="../../etc/passwd")], "pattern"),
        ([paper(abstract="   ")], "at least 1 character"),
        ([paper(abstract="\x01\x02")], "pattern"),
        ([paper(published=0)], "YYYY-MM-DD"),
        ([paper(published="2026-13-45")], "date"),
        ([paper(categories="cs.LG stat.ML")], "list"),
        ([paper(categories=["\f" + "c" * 32])], "at most 32 characters"),  # measured as sent, not stripped
        ([paper(i) for i in range(101)], "at most 100 items"),
        ([], "at least 1 item"),
    ],
)
def test_ingest_field_limits_are_422_with_the_reason(client, papers, says):
    r = client.post("/v1/papers", json={"papers": papers}, headers={"X-API-Key": client.key})
    assert r.status_code == 422, r.text
    assert says in r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "papers"]


def test_ingest_limits_follow_the_settings(store, tmp_path):
    populate(store)
    settings = Settings(paper=PaperLimits(max_abstract_chars=20), gateway=GatewaySettings(ingest_max_papers=2),
                        paths=PathSettings(data_dir=tmp_path))
    with TestClient(create_app(settings, store=store)) as c:
        h = {"X-API-Key": create_key(store, "limits")}
        assert "at most 20 characters" in c.post("/v1/papers", json={"papers": [paper(abstract="a" * 21)]}, headers=h).text
        assert "at most 2 items" in c.post("/v1/papers", json={"papers": [paper(1), paper(2), paper(3)]}, headers=h).text
        schema = c.get("/openapi.json").json()["components"]["schemas"]
        assert schema["PaperIn"]["properties"]["abstract"]["maxLength"] == 20
        assert schema["PapersIn"]["properties"]["papers"]["maxItems"] == 2


def test_ingested_papers_reach_the_papers_topic(store, kafka, tmp_path):
    from topictag.bus.kafka import make_consumer

    settings = Settings(kafka=kafka, paths=PathSettings(data_dir=tmp_path))
    with TestClient(create_app(settings, store=store)) as c:
        h = {"X-API-Key": create_key(store, "ingest")}
        assert c.post("/v1/papers", json={"papers": [paper(1)]}).status_code == 401
        r = c.post("/v1/papers", json={"papers": [paper(1), paper(2, categories=[], published=None)]}, headers=h)
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 2, "ids": ["2611.00001", "2611.00002"]}
    consumer = make_consumer(kafka, "ingest-check", kafka.papers_topic)
    try:
        got = {}
        for _ in range(20):
            for records in consumer.poll(timeout_ms=500).values():
                got.update({r.key.decode(): json.loads(r.value) for r in records})
            if len(got) == 2:
                break
    finally:
        consumer.close()
    assert got["2611.00001"]["abstract"] == "An abstract." and got["2611.00001"]["published"] == "2026-11-01"
    assert got["2611.00002"]["categories"] == []


def test_ingest_without_a_broker_is_503(client):
    r = client.post("/v1/papers", json={"papers": [paper()]}, headers={"X-API-Key": client.key})
    assert r.status_code == 503 and "TOPICTAG_KAFKA_BOOTSTRAP" in r.json()["detail"]


# -- API keys on reads ------------------------------------------------------------------

READS = ["/v1/papers", "/v1/papers/2601.00001", "/v1/topics", "/v1/topics/clusters", "/v1/topics/trends",
         "/v1/models", "/v1/models/trainings", "/v1/stats", "/v1/search?q=graphs"]
OPEN = ["/healthz", "/metrics", "/", "/static/dashboard.js", "/openapi.json"]


def test_reads_are_open_by_default(client):
    for path in READS[:-1] + OPEN:  # (search loads the embedding model: covered below)
        assert client.get(path).status_code == 200, path


def test_reads_need_a_key_when_configured(store, tmp_path):
    populate(store)
    with make_client(store, tmp_path, reads_need_key=True) as c:
        for path in READS:
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"X-API-Key": "tt_wrong"}).status_code == 403, path
            assert c.get(path, headers={"X-API-Key": c.key}).status_code == 200, path
        for path in OPEN:
            assert c.get(path).status_code == 200, path
        assert c.get("/readyz").status_code == 503  # open too: it answers, and says no broker
        # The key shows in the schema (and in /docs) on every /v1 operation.
        ops = c.get("/openapi.json").json()["paths"]["/v1/papers"]
        assert ops["get"]["security"] == [{"APIKeyHeader": []}] and "401" in ops["get"]["responses"]
        # Writes still take the same key, checked once.
        assert c.post("/v1/models/rollback", headers={"X-API-Key": c.key}).status_code == 409


def test_dashboard_can_send_a_key(client):
    js = client.get("/static/dashboard.js").text
    assert 'searchParams.get("key")' in js and 'headers["X-API-Key"]' in js and "localStorage" in js
    assert 'id="need-key"' in client.get("/").text


# -- hostile and malformed input --------------------------------------------------------

INJECTIONS = ["' OR 1=1 --", "'; DROP TABLE papers; --", "\" OR \"\"=\"", "%", "_", "\\", "1' UNION SELECT key_hash --"]


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize("name", ["topic", "category", "adapter_version"])
def test_sql_in_filters_is_only_text(client, name, text):
    r = client.get("/v1/papers", params={name: text})
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None}
    assert client.store.papers.count_tagged() == N  # and the table is still there


def test_filters_still_match_around_quotes_and_wildcards(client):
    client.store.papers.save_tagged([tagged(50, "100% Robust 'Quoted' Learning_Rates")])
    for text in ["100%", "'quoted'", "learning_rates", "% robust 'q"]:
        items = client.get("/v1/papers", params={"topic": text}).json()["items"]
        assert [p["arxiv_id"] for p in items] == ["2601.00050"], text


def test_sql_in_the_path_and_search(client):
    assert client.get("/v1/papers/2601.00001' OR '1'='1").status_code == 422  # not an arXiv id
    assert client.get("/v1/papers/2601.00001%27%20OR%20%271%27%3D%271").status_code == 422
    assert client.get("/v1/topics/clusters/1 OR 1=1").status_code == 422
    r = client.get("/v1/search", params={"q": "' OR 1=1 --"})
    assert r.status_code == 200 and isinstance(r.json()["items"], list)


def test_nul_characters_are_refused_not_sent_to_the_database(client):
    assert client.get("/v1/papers", params={"topic": "graph\x00"}).status_code == 422
    assert client.get("/v1/papers/2601%0000001").status_code == 422
    cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", "a\x00b"]).encode()).decode()
    assert client.get("/v1/papers", params={"cursor": cursor}).status_code == 400


@pytest.mark.parametrize(
    "path",
    ["/static/../../etc/passwd", "/static/..%2F..%2Fetc%2Fpasswd", "/static/%2e%2e/%2e%2e/etc/passwd",
     "/static/....//....//etc/passwd", "/static//etc/passwd", "/static/../gateway/app.py", "/static/"],
)
def test_no_path_traversal_out_of_static(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "root:" not in r.text and "import" not in r.text


def test_no_path_traversal_with_a_raw_path(client):
    """The path exactly as a client sent it (httpx would normalise the dots away)."""
    import anyio

    app = client.app
    sent = []

    async def call(path: bytes):
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": path.decode(),
                 "raw_path": path, "query_string": b"", "root_path": "", "headers": [(b"host", b"testserver")],
                 "client": ("127.0.0.1", 1), "server": ("testserver", 80)}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    for raw in [b"/static/../../etc/passwd", b"/static/../../../../../../etc/passwd", b"/static/./../app.py"]:
        sent.clear()
        anyio.run(call, raw)
        assert sent[0]["status"] == 404, raw
        assert b"root:" not in b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/v1/papers", {"cluster": "abc"}, "cluster"),
        ("/v1/papers", {"limit": "1.5"}, "limit"),
        ("/v1/papers", {"published_from": "0"}, "YYYY-MM-DD"),
        ("/v1/papers", {"published_to": "1700000000"}, "YYYY-MM-DD"),
        ("/v1/papers", {"cluster": str(2**63)}, "cluster"),
        ("/v1/topics", {"offset": "-1"}, "offset"),
        ("/v1/topics", {"offset": str(2**64)}, "offset"),
        ("/v1/topics/clusters", {"limit": "[]"}, "limit"),
        ("/v1/topics/trends", {"weeks": "true"}, "weeks"),
        ("/v1/search", {"q": ""}, "q"),
        ("/v1/search", {"q": "x", "limit": "1e3"}, "limit"),
        ("/v1/topics/clusters/99999999999999999999", {}, "cluster_id"),
    ],
)
def test_wrong_types_are_422(client, path, params, says):
    r = client.get(path, params=params)
    assert r.status_code == 422, r.text
    assert says in r.text and "Traceback" not in r.text


def test_wrong_body_types_are_422(client):
    h = {"X-API-Key": client.key}
    for body in [{"papers": "2601.00001"}, {"papers": [{"arxiv_id": 1, "abstract": "a"}]},
                 {"papers": [{"arxiv_id": "a", "abstract": ["a"]}]}, [paper()], "x"]:
        r = client.post("/v1/papers", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
    r = client.post("/v1/papers", content=b"{not json", headers=h | {"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and "Traceback" not in r.text


# -- pagination edges -------------------------------------------------------------------


def test_pages_of_one_and_of_the_most(client):
    seen, cursor = [], None
    while True:
        page = client.get("/v1/papers", params={"limit": 1} | ({"cursor": cursor} if cursor else {})).json()
        seen += [p["arxiv_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == N
    whole = client.get("/v1/papers", params={"limit": 200}).json()
    assert [p["arxiv_id"] for p in whole["items"]] == seen and whole["next_cursor"] is None
    assert client.get("/v1/papers", params={"limit": 201}).status_code == 422


def test_an_exactly_full_last_page_has_no_cursor(client):
    first = client.get("/v1/papers", params={"limit": N // 2}).json()
    second = client.get("/v1/papers", params={"limit": N // 2, "cursor": first["next_cursor"]}).json()
    assert len(second["items"]) == N // 2 and second["next_cursor"] is None


def test_cursor_with_a_filter_and_new_papers_arriving(client):
    first = client.get("/v1/papers", params={"topic": "federated", "limit": 4}).json()
    client.store.papers.save_tagged([tagged(90, "Federated Learning", minutes=10_000)])  # newer than all: page 1 only
    rest = client.get("/v1/papers", params={"topic": "federated", "limit": 4, "cursor": first["next_cursor"]}).json()
    ids = [p["arxiv_id"] for p in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == N // 2 and "2601.00090" not in ids


def test_empty_results_and_odd_cursors(client):
    assert client.get("/v1/papers", params={"topic": "no such topic"}).json() == {"items": [], "next_cursor": None}
    assert client.get("/v1/papers", params={"published_from": "2030-01-01"}).json()["items"] == []
    for junk in ["", "====", "ü", base64.urlsafe_b64encode(b"[1,2,3]").decode(), base64.urlsafe_b64encode(b"null").decode(),
                 base64.urlsafe_b64encode(b'["not a time", "x"]').decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode()]:
        r = client.get("/v1/papers", params={"cursor": junk})
        assert r.status_code in (200, 400), (junk, r.text)  # "" is no cursor: the first page
        assert r.status_code == 200 or r.json() == {"detail": "cursor is not one this API returned"}


# -- errors, request ids, CORS, methods -------------------------------------------------


def test_internal_errors_are_500_json_with_a_request_id_and_no_trace(client, caplog):
    def boom():
        raise RuntimeError("secret internals: password=hunter2")

    client.app.add_api_route("/v1/boom", boom)
    with caplog.at_level(logging.ERROR, logger="topictag.gateway.app"):
        r = client.get("/v1/boom", headers={"X-Request-ID": "req-42"})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error", "request_id": "req-42"}
    assert r.headers["x-request-id"] == "req-42"
    assert "hunter2" not in r.text and "Traceback" not in r.text
    assert "req-42" in caplog.text and "hunter2" in caplog.text  # the log keeps the trace
    r = client.get("/v1/boom", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.json()["request_id"] != "bad id\twith spaces" and len(r.json()["request_id"]) == 32


def test_every_response_has_a_request_id(client):
    assert len(client.get("/v1/papers").headers["x-request-id"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc"}).headers["x-request-id"] == "abc"


def test_cors_is_off_by_default(client):
    r = client.options("/v1/papers", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in client.get("/v1/papers", headers={"Origin": "https://evil.example"}).headers


def test_cors_allows_only_the_configured_origins(store, tmp_path):
    with make_client(store, tmp_path, cors_origins=["https://dash.example.org"]) as c:
        pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X-API-Key"}
        r = c.options("/v1/papers", headers={"Origin": "https://dash.example.org"} | pre)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://dash.example.org"
        assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
        r = c.options("/v1/papers", headers={"Origin": "https://evil.example"} | pre)
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        assert c.get("/v1/papers", headers={"Origin": "https://evil.example"}).headers.get("access-control-allow-origin") is None


def test_cors_origins_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOPICTAG_GATEWAY_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("TOPICTAG_GATEWAY_READS_NEED_KEY", "true")
    monkeypatch.setenv("TOPICTAG_GATEWAY_MAX_BODY_BYTES", "4096")
    g = GatewaySettings()
    assert g.cors_origins == ["https://a.example", "https://b.example"] and g.reads_need_key and g.max_body_bytes == 4096


def test_wrong_method_lists_every_allowed_one(client):
    r = client.delete("/v1/papers")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert client.put("/v1/topics").headers["allow"] == "GET"


def test_store_rows_untouched_by_all_of_the_above(client):
    from sqlmodel import Session, func, select

    with Session(client.store.engine) as s:
        assert s.exec(select(func.count()).select_from(PaperRecord)).one() == N
