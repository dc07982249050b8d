"""Back-off without a server: the teacher's circuit breaker and the parked papers' delays."""

from __future__ import annotations

from datetime import timedelta

from topictag.labeler.worker import park_backoff
from topictag.teacher.openai import CircuitBreaker


def test_breaker_opens_refuses_then_lets_one_trial_through():
    now = [0.0]
    b = CircuitBreaker(failures=2, reset_s=10, clock=lambda: now[0])
    b.failure()
    assert not b.open and b.allow()
    b.failure()
    assert b.open and not b.allow()
    now[0] = 11
    assert b.allow() and not b.allow()  # half-open: one trial at a time
    b.failure()  # the trial failed: open for another reset period
    now[0] = 15
    assert not b.allow()
    now[0] = 22
    assert b.allow()
    b.success()
    assert not b.open and b.allow() and b.allow()


def test_a_success_resets_the_failure_count():
    b = CircuitBreaker(failures=2, reset_s=10)
    b.failure(), b.success(), b.failure()
    assert not b.open


def test_parked_papers_wait_longer_after_each_failure_up_to_an_hour():
    assert [park_backoff(60, n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (60, 120, 240)]
    assert park_backoff(60, 10) == park_backoff(60, 10_000) == timedelta(hours=1)
