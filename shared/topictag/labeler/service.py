"""Running the labeler as a process."""

from __future__ import annotations

import logging
import signal

from topictag import metrics
from topictag.bus.kafka import ensure_topics, make_consumer, make_producer, wait_for_broker
from topictag.labeler.sampling import create_policy
from topictag.labeler.worker import LabelerWorker
from topictag.settings import Settings
from topictag.store.repository import open_store
from topictag.teacher import create_teacher

log = logging.getLogger(__name__)


def run_labeler(settings: Settings) -> None:
    metrics.serve_metrics(settings.metrics.port, settings.metrics.host)
    kafka = settings.kafka
    store = open_store(settings.store_url)
    teacher = create_teacher(settings)
    wait_for_broker(kafka)
    ensure_topics(kafka)
    consumer = make_consumer(kafka, settings.labeler.group_id, kafka.papers_topic)
    producer = make_producer(kafka)
    worker = LabelerWorker(settings, teacher, store, consumer, producer, create_policy(settings.labeler))

    def _stop(signum, _frame):
        log.info("received %s: finishing the current batch", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("labeling %.0f%% of %s with %s (%s)", 100 * settings.labeler.sample_rate, kafka.papers_topic,
             teacher.model, settings.teacher.backend)
    try:
        worker.run()
    finally:
        consumer.close(autocommit=False)
        worker.publisher.close(timeout=10)
        teacher.close()
        store.close()
        log.info("labeler stopped")
