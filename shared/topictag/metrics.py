"""Every Prometheus metric topictag exports, in one place, so names stay consistent
across services and the Grafana dashboard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

PAPERS_TAGGED = Counter(
    "topictag_papers_tagged_total", "Papers tagged and stored.", ["adapter_version"]
)
PAPERS_DEAD_LETTERED = Counter(
    "topictag_papers_dead_lettered_total", "Messages sent to the dead-letter topic.", ["reason_kind"]
)
TAG_BATCH_SECONDS = Histogram(
    "topictag_tag_batch_seconds",
    "Engine time per batch.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
TAG_BATCH_SIZE = Histogram(
    "topictag_tag_batch_size", "Papers per engine call.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
TAG_CONFIDENCE = Histogram(
    "topictag_tag_confidence",
    "Mean token log-probability of each topic the student gave (0 is certain); a new adapter's shift shows here.",
    ["adapter_version"],
    buckets=(-4, -2, -1.5, -1, -0.75, -0.5, -0.3, -0.2, -0.1, -0.05, 0),
)
STORE_RETRIES = Counter("topictag_store_retries_total", "Store writes retried after an error.")
ADAPTER_IN_SERVICE = Gauge(
    "topictag_adapter_in_service", "1 for the adapter version this worker serves.", ["adapter_version"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "topictag_http_request_seconds", "Gateway request latency.", ["method", "route", "status"]
)
READ_CACHE = Counter(
    "topictag_gateway_read_cache_total",
    "Gateway reads answered from its short-lived cache (hit), from an expired entry while it is refreshed (stale), "
    "or from the store (miss).",
    ["result"],
)
TEACHER_LABELS = Counter("topictag_teacher_labels_total", "Teacher labels stored.", ["teacher_model"])
TEACHER_UNKNOWN = Counter("topictag_teacher_unknown_total", "Sampled papers the recorded teacher has no label for.")
TEACHER_FAILURES = Counter("topictag_teacher_failures_total", "Failed teacher calls, by kind.", ["kind"])
PAPERS_PARKED = Counter("topictag_papers_parked_total", "Sampled papers parked after the teacher failed.")
PAPERS_SAMPLED = Counter("topictag_papers_sampled_total", "Papers the labeler's policy sent to the teacher.")
LABELER_INVALID = Counter(
    "topictag_labeler_invalid_total", "Messages the labeler skipped as not a paper (the tagger dead-letters them)."
)
TEACHER_REQUEST_SECONDS = Histogram(
    "topictag_teacher_request_seconds",
    "Time per request to an OpenAI-compatible teacher, by outcome.",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
CONSUMER_LAG = Gauge(
    "topictag_consumer_lag",
    "Messages on this worker's partitions beyond its fetch position (high-water mark minus position), "
    "after its last poll; sum by group and topic for the group's lag.",
    ["group", "topic"],
)
MESSAGES_CONSUMED = Counter(
    "topictag_messages_consumed_total", "Messages a consuming worker polled (replays included).", ["group", "topic"]
)


# Read from the store at scrape time by the gateway (StoreCollector): the trainer's work,
# whichever process did it.
PRODUCTION_ADAPTER = "topictag_production_adapter"
TRAINING_RUNS = "topictag_training_runs"
TEACHER_LABELS_STORED = "topictag_teacher_labels_stored"
PAPERS_PARKED_NOW = "topictag_papers_parked_now"


class StoreCollector:
    """Gauges over the store's small tables: the production adapter and its scores on the
    frozen split, training runs by status, teacher labels and parked papers."""

    def __init__(self, store: Callable[[], Any]):
        self.store = store  # called at each scrape: the gateway opens its store at start-up

    def collect(self):
        import json

        from sqlalchemy.exc import SQLAlchemyError

        store = self.store()
        try:
            production = store.adapters.production()
            runs = store.training_runs.count_by_status()
            labels, parked = store.teacher_labels.count(), store.parked.count()
        except SQLAlchemyError:
            return  # the store is away: these series are absent until it is back (the gateway's /ready says so)
        adapter = GaugeMetricFamily(
            PRODUCTION_ADAPTER, "Scores of the production adapter on its frozen split (version: base when none).",
            labels=["version", "score"],
        )
        if production is not None:
            scores = json.loads(production.metrics or "{}")
            for score in ("rouge1_f", "bleu3"):
                if isinstance(scores.get(score), int | float):
                    adapter.add_metric([production.version, score], scores[score])
        else:
            adapter.add_metric(["base", "none"], 0)
        yield adapter
        by_status = GaugeMetricFamily(TRAINING_RUNS, "Training runs in the store, by status.", labels=["status"])
        for status, count in runs.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(TEACHER_LABELS_STORED, "Teacher labels in the store.", value=labels)
        yield GaugeMetricFamily(PAPERS_PARKED_NOW, "Sampled papers parked, waiting for the teacher.", value=parked)


def serve_metrics(port: int | None, host: str = "0.0.0.0") -> tuple[str, int] | None:
    """Serve this process's metrics at ``/metrics`` from a daemon thread (workers have no
    HTTP server of their own). Returns the bound (host, port); None when ``port`` is unset."""
    import logging

    from prometheus_client import start_http_server

    if port is None:
        return None
    server, _thread = start_http_server(port, addr=host)
    bound = cast(tuple[str, int], server.server_address[:2])  # an IP socket's address
    logging.getLogger(__name__).info("metrics at http://%s:%d/metrics", *bound)
    return bound
