"""A single-flight lock in the store: two trainings never run at once, on any host."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from topictag.store.models import Lease
from topictag.store.repository import Store


def _now() -> datetime:
    return datetime.now(timezone.utc)


def acquire(store: Store, name: str, holder: str, ttl_s: float) -> bool:
    """Take lease ``name`` for ``holder`` unless someone else holds an unexpired one."""
    now = _now()
    expires = now + timedelta(seconds=ttl_s)
    with store.engine.begin() as conn:
        taken = conn.execute(
            update(Lease)
            .where(Lease.name == name)
            .where((Lease.expires_at < now) | (Lease.holder == holder))
            .values(holder=holder, expires_at=expires)
        ).rowcount
    if taken:
        return True
    try:
        with store.engine.begin() as conn:
            conn.execute(Lease.__table__.insert().values(name=name, holder=holder, expires_at=expires))
        return True
    except IntegrityError:  # held by someone else (or they inserted first)
        return False


def release(store: Store, name: str, holder: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


@contextmanager
def held(store: Store, name: str, holder: str, ttl_s: float) -> Iterator[bool]:
    """Hold lease ``name`` for the block (yields False if someone else has it), renewing it
    every third of ``ttl_s`` so a long training keeps it while a crashed one loses it."""
    if not acquire(store, name, holder, ttl_s):
        yield False
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            acquire(store, name, holder, ttl_s)

    renewer = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        release(store, name, holder)
