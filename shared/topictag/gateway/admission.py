"""Admission control: a bounded queue in front of expensive requests.

Beyond what the gateway can answer per second, requests that are let in only wait: every
one of them is answered late, and the wait grows for as long as the load lasts. Refusing
the ones over a bound at once (503 with Retry-After) keeps the answered ones fast and tells
clients to come back, instead of timing every client out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException


class Admission:
    """At most ``limit`` requests of one kind inside the gateway (running or waiting for a
    thread); 0 lets every one in. Used from the event loop only, so the count needs no lock."""

    def __init__(self, what: str, limit: int, retry_after_s: int = 1):
        self.what = what
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.inside = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.limit and self.inside >= self.limit:
            raise HTTPException(
                503,
                f"{self.what}: {self.inside} requests are already waiting; try again shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.inside += 1
        try:
            yield
        finally:
            self.inside -= 1
