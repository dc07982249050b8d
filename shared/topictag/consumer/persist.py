"""Step: write the batch's results to the store, riding out a store outage."""

from __future__ import annotations

import threading
from collections.abc import Callable

from topictag.backoff import Backoff
from topictag.consumer.batch import Batch
from topictag.store.retry import with_store_retries


class Persist:
    """``save(batch)``, retried under ``backoff`` while the store is unavailable. Asked to
    stop meanwhile, it abandons the batch: nothing is committed and the batch replays.
    ``save`` must be safe to repeat (upserts) and set, not extend, what it puts on the batch."""

    def __init__(self, save: Callable[[Batch], None], stopping: threading.Event, backoff: Backoff, what: str):
        self.save, self.stopping, self.backoff, self.what = save, stopping, backoff, what

    def __call__(self, batch: Batch) -> bool:
        def attempt() -> bool:
            self.save(batch)
            return True

        return bool(with_store_retries(attempt, self.stopping, self.backoff, what=self.what))
