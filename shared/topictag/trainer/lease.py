"""A single-flight lock in the store: two trainings never run at once, on any host."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from topictag.store import Store


@contextmanager
def held(store: Store, name: str, holder: str, ttl_s: float) -> Iterator[bool]:
    """Hold lease ``name`` for the block (yields False if someone else has it), renewing it
    every third of ``ttl_s`` so a long training keeps it while a crashed one loses it."""
    leases = store.leases
    if not leases.acquire(name, holder, ttl_s):
        yield False
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            leases.acquire(name, holder, ttl_s)

    renewer = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        leases.release(name, holder)
