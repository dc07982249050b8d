"""The gateway's read cache: one query per key per TTL, concurrent askers share it, errors are not kept."""

from __future__ import annotations

import threading
import time

import pytest

from topictag.gateway.cache import ReadCache


def test_answers_are_shared_until_they_expire():
    calls = []
    cache = ReadCache(ttl_s=0.2)
    assert cache.get("k", lambda: calls.append(1) or "first") == "first"
    assert cache.get("k", lambda: calls.append(1) or "second") == "first"
    assert cache.get("other", lambda: "other") == "other"
    time.sleep(0.25)
    assert cache.get("k", lambda: calls.append(1) or "third") == "third"
    assert len(calls) == 2


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


def test_a_failed_query_is_not_kept():
    cache = ReadCache(ttl_s=5)

    def boom():
        raise ValueError("bad cursor")

    with pytest.raises(ValueError):
        cache.get("k", boom)
    assert cache.get("k", lambda: "fine") == "fine"
