"""Riding out a store outage: a worker keeps the batch it holds, backs off and tries again,
committing no Kafka offset until the store has taken the batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from topictag import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


def with_store_retries(
    action: Callable[[], T], stopping: threading.Event, *, first_s: float, max_s: float, what: str
) -> T | None:
    """``action()``, retried with doubling back-off while the store raises. None when asked to
    stop first: the caller must not commit what it holds (it is replayed)."""
    backoff = first_s
    while True:
        try:
            return action()
        except SQLAlchemyError as exc:
            metrics.STORE_RETRIES.inc()
            log.warning("%s failed: store unavailable (%s); retrying in %.1f s", what, exc.__class__.__name__, backoff)
            if stopping.wait(backoff):
                return None
            backoff = min(backoff * 2, max_s)
