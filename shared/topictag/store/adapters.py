"""Adapter versions: their rows, and the transactions that move production between them."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from topictag.lifecycle import AdapterStatus
from topictag.store.engine import utcnow
from topictag.store.models import AdapterVersion


class AdapterVersionRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def next_version(self) -> str:
        with Session(self.engine) as s:
            last = s.exec(select(AdapterVersion.id).order_by(col(AdapterVersion.id).desc())).first()
        return f"v{(last or 0) + 1}"

    def add(self, row: AdapterVersion) -> AdapterVersion:
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return row

    def get(self, version: str) -> AdapterVersion | None:
        with Session(self.engine) as s:
            return s.exec(select(AdapterVersion).where(AdapterVersion.version == version)).first()

    def list(self) -> list[AdapterVersion]:
        """Every version, oldest first."""
        with Session(self.engine) as s:
            return list(s.exec(select(AdapterVersion).order_by(col(AdapterVersion.id))).all())

    def production(self) -> AdapterVersion | None:
        with Session(self.engine) as s:
            return s.exec(select(AdapterVersion).where(AdapterVersion.status == AdapterStatus.PRODUCTION)).first()

    def set_status(self, version: str, status: AdapterStatus, reason: str) -> AdapterVersion:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.exec(select(AdapterVersion).where(AdapterVersion.version == version)).one()
            row.status, row.reason = status, reason
            s.add(row)
            s.commit()
            return row

    def promote(self, version: str, reason: str) -> AdapterVersion:
        """In one transaction: retire whatever is in production and put ``version`` there."""
        with Session(self.engine, expire_on_commit=False) as s:
            for current in s.exec(select(AdapterVersion).where(AdapterVersion.status == AdapterStatus.PRODUCTION)).all():
                current.status = AdapterStatus.RETIRED
                s.add(current)
            row = s.exec(select(AdapterVersion).where(AdapterVersion.version == version)).one()
            row.status, row.reason, row.promoted_at = AdapterStatus.PRODUCTION, reason, utcnow()
            s.add(row)
            s.commit()
            return row

    def roll_back(self, reason: str) -> tuple[AdapterVersion, AdapterVersion | None] | None:
        """In one transaction: retire production and restore the version promoted before it.
        Returns (retired, restored or None for the base model); None when nothing is in
        production."""
        with Session(self.engine, expire_on_commit=False) as s:
            current = s.exec(select(AdapterVersion).where(AdapterVersion.status == AdapterStatus.PRODUCTION)).first()
            if current is None:
                return None
            previous = s.exec(
                select(AdapterVersion)
                .where(AdapterVersion.status == AdapterStatus.RETIRED, col(AdapterVersion.promoted_at).is_not(None))
                .where(AdapterVersion.id != current.id)
                .where(col(AdapterVersion.promoted_at) < current.promoted_at)
                .order_by(col(AdapterVersion.promoted_at).desc())
            ).first()
            current.status, current.reason = AdapterStatus.RETIRED, reason
            s.add(current)
            if previous is not None:
                previous.status, previous.reason = AdapterStatus.PRODUCTION, f"restored by rollback of {current.version}"
                s.add(previous)
            s.commit()
            return current, previous
