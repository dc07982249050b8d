"""The gateway's read cache: one query per key per TTL, concurrent askers share it, errors are not kept."""

from __future__ import annotations

import threading
import time

import pytest

from topictag.gateway.cache import ReadCache


def _eventually(check, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_answers_are_shared_then_refreshed_behind_a_stale_answer():
    calls = []
    cache = ReadCache(ttl_s=0.2)
    assert cache.get("k", lambda: calls.append(1) or "first") == "first"
    assert cache.get("k", lambda: calls.append(1) or "second") == "first"
    assert cache.get("other", lambda: "other") == "other"
    time.sleep(0.25)
    # Expired: the old answer comes back at once while the query runs again behind it.
    assert cache.get("k", lambda: calls.append(1) or "third") == "first"
    assert _eventually(lambda: cache.get("k", lambda: "fourth") == "third")
    assert len(calls) == 2


def test_answers_too_old_are_not_used():
    cache = ReadCache(ttl_s=0.05, max_stale_s=0.05)
    assert cache.get("k", lambda: "old") == "old"
    time.sleep(0.15)
    assert cache.get("k", lambda: "new") == "new"


def test_zero_ttl_always_queries():
    cache = ReadCache(ttl_s=0)
    answers = iter(["a", "b"])
    assert [cache.get("k", lambda: next(answers)) for _ in range(2)] == ["a", "b"]


def test_concurrent_askers_of_one_key_run_one_query():
    cache = ReadCache(ttl_s=5)
    started, release, calls = threading.Event(), threading.Event(), []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return "answer"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(8)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    time.sleep(0.1)
    release.set()
    for t in threads:
        t.join(5)
    assert results == ["answer"] * 8
    assert len(calls) == 1


def boom():
    raise ValueError("bad cursor")


def test_a_failed_query_is_not_kept():
    cache = ReadCache(ttl_s=5)
    with pytest.raises(ValueError):
        cache.get("k", boom)
    assert cache.get("k", lambda: "fine") == "fine"


def test_a_failed_refresh_keeps_the_stale_answer():
    cache = ReadCache(ttl_s=0.05, max_stale_s=5)
    assert cache.get("k", lambda: "kept") == "kept"
    time.sleep(0.1)
    assert cache.get("k", boom) == "kept"  # starts the refresh, which fails
    assert _eventually(lambda: not cache._computing)
    assert cache.get("k", boom) == "kept"
    assert _eventually(lambda: not cache._computing)
    cache.close()
