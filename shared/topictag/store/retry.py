"""Riding out a store outage: a worker keeps the batch it holds, backs off and tries again,
committing no Kafka offset until the store has taken the batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from tenacity import RetryCallState

from topictag import metrics
from topictag.backoff import Backoff, Stopped, attempt_error

log = logging.getLogger(__name__)

T = TypeVar("T")


def with_store_retries(action: Callable[[], T], stopping: threading.Event, backoff: Backoff, *, what: str) -> T | None:
    """``action()``, retried under ``backoff`` while the store raises. None when asked to stop
    first: the caller must not commit what it holds (it is replayed)."""

    def before_sleep(state: RetryCallState) -> None:
        metrics.STORE_RETRIES.inc()
        log.warning("%s failed: store unavailable (%s); retrying in %.1f s", what,
                    attempt_error(state).__class__.__name__, state.upcoming_sleep)

    try:
        return backoff.retrying(SQLAlchemyError, stopping=stopping, before_sleep=before_sleep)(action)
    except Stopped:
        return None
