"""Step: send the batch's messages, every one acknowledged, before anything is committed."""

from __future__ import annotations

import threading

from topictag.bus.publish import ReliablePublisher
from topictag.consumer.batch import Batch


class Produce:
    """Publishes ``batch.messages`` through the acks-checked publisher, resending until the
    broker has them all; asked to stop meanwhile, it abandons the batch."""

    def __init__(self, publisher: ReliablePublisher, stopping: threading.Event):
        self.publisher, self.stopping = publisher, stopping

    def __call__(self, batch: Batch) -> bool:
        return self.publisher.publish(batch.messages, self.stopping)
