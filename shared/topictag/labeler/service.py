"""Running the labeler as a process."""

from __future__ import annotations

import logging

from topictag import metrics
from topictag.bootstrap import Parts
from topictag.bus.kafka import (
    ensure_topics,
    make_consumer,
    make_producer,
    wait_for_broker,
)
from topictag.consumer import stop_on_signals
from topictag.labeler.sampling import create_policy, labeler_topic
from topictag.labeler.worker import LabelerWorker
from topictag.settings import Settings

log = logging.getLogger(__name__)


def run_labeler(settings: Settings) -> None:
    metrics.serve_metrics(settings.metrics.port, settings.metrics.host)
    kafka = settings.kafka
    with Parts(settings) as parts:
        teacher = parts.teacher
        wait_for_broker(kafka)
        ensure_topics(kafka)
        source = labeler_topic(settings)
        consumer = make_consumer(kafka, settings.labeler.group_id, source)
        worker = LabelerWorker(settings, teacher, parts.store, consumer, make_producer(kafka), create_policy(settings.labeler))
        stop_on_signals(worker.stop)
        log.info("labeling %.0f%% of %s (%s sampling) with %s (%s)", 100 * settings.labeler.sample_rate, source,
                 settings.labeler.policy, teacher.model, settings.teacher.backend)
        try:
            worker.run()
        finally:
            consumer.close(autocommit=False)
            worker.publisher.close(timeout=10)
    log.info("labeler stopped")
