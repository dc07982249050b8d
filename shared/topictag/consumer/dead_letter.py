"""Step: dead records as dead letters, produced with the batch's results."""

from __future__ import annotations

from topictag.bus.dead_letter import dead_letter_message
from topictag.consumer.batch import Batch


class DeadLetter:
    """Each record in ``batch.dead`` goes to ``dlq_topic`` unchanged, its reason and origin
    in ``topictag.dlq.*`` headers (``topictag.bus.dead_letter``)."""

    def __init__(self, dlq_topic: str):
        self.dlq_topic = dlq_topic

    def __call__(self, batch: Batch) -> bool:
        batch.messages += [dead_letter_message(self.dlq_topic, record, reason) for record, reason in batch.dead]
        return True
