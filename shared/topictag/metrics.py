"""Every Prometheus metric topictag exports, in one place, so names stay consistent
across services and the Grafana dashboard."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
STORE_RETRIES = Counter("topictag_store_retries_total", "Store writes retried after an error.")
ADAPTER_IN_SERVICE = Gauge(
    "topictag_adapter_in_service", "1 for the adapter version this worker serves.", ["adapter_version"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "topictag_http_request_seconds", "Gateway request latency.", ["method", "route", "status"]
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
