"""Named locks with an expiry, held in the store so they work across hosts: a holder that
dies loses its lease when it expires; a live one renews it while it works."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from topictag.store.engine import utcnow
from topictag.store.models import Lease, table_of


class LeaseRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` unless another holds an unexpired one."""
        now = utcnow()
        expires = now + timedelta(seconds=ttl_s)
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(Lease)
                .where(col(Lease.name) == name)
                .where((col(Lease.expires_at) < now) | (col(Lease.holder) == holder))
                .values(holder=holder, expires_at=expires)
            ).rowcount
        if taken:
            return True
        try:
            with self.engine.begin() as conn:
                conn.execute(table_of(Lease).insert().values(name=name, holder=holder, expires_at=expires))
            return True
        except IntegrityError:  # held by someone else (or they inserted first)
            return False

    def release(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder))


class Leases(Protocol):
    def acquire(self, name: str, holder: str, ttl_s: float) -> bool: ...

    def release(self, name: str, holder: str) -> None: ...


@contextmanager
def held(leases: Leases, name: str, holder: str, ttl_s: float) -> Iterator[bool]:
    """Hold lease ``name`` for the block (yields False if someone else has it), renewing it
    every third of ``ttl_s`` so a long training keeps it while a crashed one loses it."""
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
