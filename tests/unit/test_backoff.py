"""The one back-off rule: full jitter under a doubling ceiling, a cap, and its stops."""

from __future__ import annotations

import threading

import pytest
from topictag.backoff import Backoff, Stopped


def test_waits_are_drawn_under_a_doubling_ceiling_up_to_the_cap():
    rule = Backoff(0.5, 3.0)
    assert [rule.ceiling(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert rule.ceiling(10_000) == 3.0  # no overflow after a long outage
    for n in (1, 2, 3, 4, 8):
        waits = [rule.delay(n) for _ in range(500)]
        assert all(0 <= w <= rule.ceiling(n) for w in waits)
        # Full jitter: the draws cover the whole window, not just its top half.
        assert min(waits) < 0.2 * rule.ceiling(n) and max(waits) > 0.8 * rule.ceiling(n)


def test_retrying_sleeps_the_rule_and_stops_after_the_attempts():
    slept: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        raise ConnectionError(f"try {len(calls)}")

    rule = Backoff(1.0, 4.0)
    with pytest.raises(ConnectionError, match="try 4"):  # the last error, as it was
        rule.retrying(ConnectionError, attempts=4, sleep=slept.append)(flaky)
    assert len(calls) == 4 and len(slept) == 3
    assert all(0 <= s <= c for s, c in zip(slept, (1.0, 2.0, 4.0)))


def test_an_error_not_retried_is_raised_at_once():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("no")

    with pytest.raises(ValueError):
        Backoff(1.0, 4.0).retrying(ConnectionError, sleep=lambda s: None)(broken)
    assert len(calls) == 1


def test_a_stop_request_ends_the_wait_with_stopped():
    stopping = threading.Event()
    stopping.set()
    calls = []

    def down():
        calls.append(1)
        raise ConnectionError

    with pytest.raises(Stopped):
        Backoff(60.0, 60.0).retrying(ConnectionError, stopping=stopping)(down)
    assert len(calls) == 1  # no attempt after the stop
