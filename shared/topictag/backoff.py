"""The one back-off rule every retry in topictag follows: exponential with full jitter.

After the n-th failure (n from 1) the wait is drawn uniformly from
[0, min(cap, base * 2**(n - 1))]: the ceiling doubles, and workers that failed together
(a store, broker or teacher outage) spread their retries instead of coming back at once.
Built on tenacity (``wait_random_exponential`` is the full-jitter rule; its parent,
``wait_exponential``, is the ceiling). Each caller picks its own base, cap and stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_base,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base


class Stopped(Exception):
    """Asked to stop while waiting to retry: what the caller holds was not finished."""


@dataclass(frozen=True)
class Backoff:
    base_s: float
    cap_s: float

    @property
    def wait(self) -> wait_base:
        """The tenacity wait strategy: full jitter under the ceiling."""
        return wait_random_exponential(multiplier=self.base_s, max=self.cap_s)

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failures (no overflow after a long outage)."""
        return wait_exponential(multiplier=self.base_s, max=self.cap_s)(_after(failures))

    def delay(self, failures: int) -> float:
        """A wait after ``failures`` failures, drawn as ``wait`` draws it."""
        return self.wait(_after(failures))

    def retrying(
        self,
        retry: type[BaseException] | tuple[type[BaseException], ...] | retry_base,
        *,
        attempts: int | None = None,
        stopping: threading.Event | None = None,
        wait: wait_base | Callable[[RetryCallState], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        before_sleep: Callable[[RetryCallState], None] | None = None,
    ) -> Retrying:
        """A tenacity ``Retrying`` under this rule: retries on ``retry`` (exception types or a
        tenacity retry condition), ``attempts`` times in all (None: until it succeeds). With
        ``stopping``, a wait ends early when it is set and raises ``Stopped``. After the last
        attempt the last exception is raised as it was."""
        return Retrying(
            retry=retry if isinstance(retry, retry_base) else retry_if_exception_type(retry),
            stop=stop_never if attempts is None else stop_after_attempt(attempts),
            wait=wait or self.wait,
            sleep=_until(stopping) if stopping is not None else sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


def attempt_error(state: RetryCallState) -> BaseException | None:
    """The exception of the attempt just made, for a ``before_sleep`` or ``wait`` callback."""
    assert state.outcome is not None, "tenacity calls these only after an attempt"
    return state.outcome.exception()


def _after(failures: int) -> RetryCallState:
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # waits read attempt_number only
    state.attempt_number = failures
    return state


def _until(stopping: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise Stopped

    return sleep
