"""Schemathesis fuzzes every operation of the gateway's OpenAPI schema, in process (ASGI),
over a SQLite store with tagged papers, topic clusters, search embeddings and adapter
versions: no 5xx, and every response conforms to the schema (status codes, bodies,
headers, content types; valid input accepted, invalid input refused).

Each operation runs twice: with a valid API key, and without one (writes must refuse).
Generation is deterministic so CI sees the same cases on every run; FUZZ_EXAMPLES=200
makes a longer, random search (locally, by hand).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.python.asgi import HOST
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.test_registry import BASE, register
from tests.integration.test_store import tagged
from topictag.adapters.registry import AdapterRegistry
from topictag.gateway.app import create_app
from topictag.gateway.auth import create_key
from topictag.bus.embedded import EmbeddedBroker, free_port
from topictag.settings import GatewaySettings, KafkaSettings, PathSettings, Settings, StoreSettings, StudentSettings
from topictag.store import open_store
from topictag.topics.index import TopicIndex

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
TOPICS = ["Anomaly Detection in Time Series", "Time Series Anomaly Detection", "Federated Learning",
          "Graph Neural Networks for Molecules", "Protein Structure Prediction"]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


# The app exists when the module is collected (schemathesis makes one test per operation
# from its schema), so its (frozen) settings name a store and a broker port chosen now; the
# fixture below fills that store and starts a broker on that port before the first request
# starts the app's lifespan. (schemathesis.pytest.from_fixture would defer all of this, but
# fails on pytest 9.)
ROOT = Path(tempfile.mkdtemp(prefix="topictag-fuzz-"))
BROKER_PORT = free_port()
SETTINGS = Settings(
    paths=PathSettings(data_dir=ROOT / "data"),
    store=StoreSettings(url=f"sqlite:///{ROOT / 'store.db'}"),
    kafka=KafkaSettings(bootstrap=f"127.0.0.1:{BROKER_PORT}", papers_topic="papers-fuzz", models_topic="models-fuzz"),
    student=StudentSettings(model_name=BASE),
    gateway=GatewaySettings(ingest_max_papers=5),
)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP  # requests go to the app in process (ASGI), probes included
schema.config.update(base_url=f"http://{HOST}")
# Same cases on every CI run; with FUZZ_EXAMPLES set, a fresh random search each time.
schema.config.generation.update(deterministic="FUZZ_EXAMPLES" not in os.environ, max_examples=EXAMPLES)


@pytest.fixture(scope="module")
def gateway():
    store = open_store(SETTINGS.store_url)
    batch = [tagged(i, TOPICS[i % len(TOPICS)]) for i in range(40)]
    store.papers.save_tagged(batch)
    TopicIndex(store).add(batch)
    registry = AdapterRegistry(store)
    register(registry, ROOT, rouge=40.0)
    register(registry, ROOT, rouge=45.0)
    key = create_key(store, "fuzz")
    store.close()
    try:
        with EmbeddedBroker(BROKER_PORT, log_file=ROOT / "broker.log"):
            yield {"key": key}
            asgi.shutdown_lifespans()  # the app's lifespan, started by the first request
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)


def _checks(case) -> dict:
    """Requests that fit the schema and are still refused, rightly: an opaque cursor the API
    never handed out (400), a date range that ends before it starts (422)."""
    q = case.query or {}
    backwards = q.get("published_from") and q.get("published_to") and str(q["published_from"]) > str(q["published_to"])
    return {"excluded_checks": [positive_data_acceptance]} if q.get("cursor") or backwards else {}


@schema.parametrize()
@FUZZ
def test_with_a_key(case, gateway):
    case.call_and_validate(headers={"X-API-Key": gateway["key"]}, **_checks(case))


@schema.parametrize()
@FUZZ
def test_without_a_key(case, gateway):
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
    response = case.call_and_validate(**_checks(case))
    if case.operation.method.upper() == "POST" and case.method.upper() == "POST":
        # Refused for want of a key; a body that is not JSON at all is refused before that.
        not_json = response.status_code in (400, 422) and ("parsing the body" in response.text or "json_invalid" in response.text)
        assert response.status_code == 401 or not_json, response.text
