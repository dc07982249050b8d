"""Running the tagger as a process: wire settings to the engine, bus and store, stop on
SIGTERM/SIGINT after the batch in hand is committed."""

from __future__ import annotations

import logging

from topictag import metrics
from topictag.adapters.events import ProductionAdapterWatch, model_event_consumer
from topictag.adapters.shipped import seed_shipped_adapter
from topictag.bootstrap import Parts
from topictag.bus.kafka import (
    ensure_topics,
    make_consumer,
    make_producer,
    wait_for_broker,
)
from topictag.consumer import stop_on_signals
from topictag.settings import Settings
from topictag.tagger.worker import TaggerWorker
from topictag.topics.index import TopicIndex

log = logging.getLogger(__name__)


def run_tagger(settings: Settings) -> None:
    metrics.serve_metrics(settings.metrics.port, settings.metrics.host)
    kafka = settings.kafka
    with Parts(settings) as parts:
        store, engine = parts.store, parts.student_engine
        log.info("student %s ready on %s in %.1f s", engine.model_name, type(engine).__name__, engine.startup_s)
        wait_for_broker(kafka)
        ensure_topics(kafka)
        seed_shipped_adapter(parts.registry, settings)
        consumer = make_consumer(kafka, settings.tagger.group_id, kafka.papers_topic)
        watch = ProductionAdapterWatch(
            parts.registry, engine, settings.student.model_name, consumer=model_event_consumer(kafka)
        )
        worker = TaggerWorker(settings, engine, store, consumer, make_producer(kafka), adapter_watch=watch,
                              topic_index=TopicIndex(store, settings.topics.cluster_threshold))
        stop_on_signals(worker.stop)
        log.info("tagging %s as group %s", kafka.papers_topic, settings.tagger.group_id)
        try:
            worker.run()
        finally:
            consumer.close(autocommit=False)
            watch.close()
            worker.publisher.close(timeout=10)  # the producer in use (it may have replaced ours)
    log.info("tagger stopped")
