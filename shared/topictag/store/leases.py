"""Named locks with an expiry, held in the store so they work across hosts."""

from __future__ import annotations

from datetime import timedelta

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
