"""Step: commit the batch's offsets, the last thing done with it."""

from __future__ import annotations

import logging

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError

from topictag.bus.batching import batch_offsets
from topictag.consumer.batch import Batch

log = logging.getLogger(__name__)


class Commit:
    """Commits one past the last record of each partition. A refused or failed commit is
    logged, not raised: the batch is replayed and the store's upserts absorb the repeat."""

    def __init__(self, consumer: KafkaConsumer):
        self.consumer = consumer

    def __call__(self, batch: Batch) -> bool:
        try:
            self.consumer.commit(batch_offsets(batch.records))
            batch.committed = True
        except CommitFailedError:
            # The group rebalanced while we worked: the new owner replays these records.
            log.warning("commit refused after a rebalance; the batch will be replayed")
        except KafkaError as exc:
            # The coordinator is gone (broker restart): a later commit covers these offsets,
            # or the batch is replayed.
            log.warning("commit failed (%s); the batch may be replayed", exc.__class__.__name__)
        return True
