"""A short-lived cache of read answers.

Dashboards and API clients poll the same few pages (the newest papers, a topic's papers,
the first page of a filter) many times a second between them, while the store changes a
few times a second at most. Each distinct query is run at most once per ``ttl_s`` and its
answer shared; a paper tagged meanwhile shows up at most ``ttl_s`` later. Validation and
authentication still run per request: only the store query is shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from cachetools import TTLCache

from topictag import metrics

T = TypeVar("T")
_MISS = object()


class ReadCache:
    def __init__(self, ttl_s: float, max_entries: int = 1024):
        self.ttl_s = ttl_s
        self._entries: TTLCache | None = TTLCache(max_entries, ttl_s) if ttl_s > 0 else None
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Event] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if self._entries is None:
            return compute()
        while True:
            with self._lock:
                value = self._entries.get(key, _MISS)
                if value is not _MISS:
                    metrics.READ_CACHE.labels("hit").inc()
                    return value  # type: ignore[return-value]
                running = self._computing.get(key)
                if running is None:
                    # This thread runs the query; others asking for the same key wait for it
                    # instead of running it too (a popular page expiring under load).
                    running = self._computing[key] = threading.Event()
                    break
            running.wait()
        metrics.READ_CACHE.labels("miss").inc()
        try:
            value = compute()
            with self._lock:
                self._entries[key] = value
            return value
        finally:
            with self._lock:
                del self._computing[key]
            running.set()
