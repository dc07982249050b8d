"""A short-lived cache of read answers.

Dashboards and API clients poll the same few pages (the newest papers, a topic's papers,
the first page of a filter) many times a second between them, while the store changes a
few times a second at most. Each distinct query runs at most about once per ``ttl_s`` and
its answer is shared. An answer older than ``ttl_s`` is still returned while one
background thread runs the query again (stale-while-revalidate), so a slow query never
holds up the requests that asked for it; answers older than ``max_stale_s`` are not
used. Validation and authentication still run per request: only the store query is
shared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cachetools import TTLCache

from topictag import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class ReadCache:
    def __init__(self, ttl_s: float, max_stale_s: float = 10.0, max_entries: int = 1024):
        self.ttl_s = ttl_s
        # Entries live max_stale_s beyond their freshness; unused ones then leave memory.
        self._entries: TTLCache | None = TTLCache(max_entries, ttl_s + max_stale_s) if ttl_s > 0 else None
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Event] = {}
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-cache")

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if self._entries is None:
            return compute()
        while True:
            with self._lock:
                entry = self._entries.get(key)
                running = self._computing.get(key)
                if entry is not None:
                    value, stored_at = entry
                    if time.monotonic() - stored_at < self.ttl_s:
                        metrics.READ_CACHE.labels("hit").inc()
                    else:
                        metrics.READ_CACHE.labels("stale").inc()
                        if running is None:
                            self._computing[key] = threading.Event()
                            self._refresher.submit(self._refresh, key, compute)
                    return value
                if running is None:
                    # This thread runs the query; others asking for the same key wait for it
                    # instead of running it too.
                    running = self._computing[key] = threading.Event()
                    break
            running.wait()
        metrics.READ_CACHE.labels("miss").inc()
        try:
            return self._store(key, compute())
        finally:
            self._done(key)

    def _store(self, key: Hashable, value: T) -> T:
        assert self._entries is not None  # reached only from get() with the cache on
        with self._lock:
            self._entries[key] = (value, time.monotonic())
        return value

    def _done(self, key: Hashable) -> None:
        with self._lock:
            event = self._computing.pop(key)
        event.set()

    def _refresh(self, key: Hashable, compute: Callable[[], T]) -> None:
        try:
            self._store(key, compute())
        except Exception:
            log.warning("refreshing a cached read failed", exc_info=True)
        finally:
            self._done(key)

    def close(self) -> None:
        self._refresher.shutdown(wait=False, cancel_futures=True)
