"""API keys for the gateway's write endpoints, by the SHA-256 of the key."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from topictag.store.engine import utcnow
from topictag.store.models import ApiKey


class ApiKeyRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, name: str, key_hash: str) -> None:
        """Raises ValueError when a key named ``name`` exists (revoked ones included)."""
        try:
            with Session(self.engine) as s:
                s.add(ApiKey(name=name, key_hash=key_hash, created_at=utcnow()))
                s.commit()
        except IntegrityError:
            raise ValueError(f"an API key named {name!r} exists already") from None

    def revoke(self, name: str) -> bool:
        """False when no active key has that name."""
        with Session(self.engine) as s:
            row = s.exec(select(ApiKey).where(ApiKey.name == name, col(ApiKey.revoked_at).is_(None))).first()
            if row is None:
                return False
            row.revoked_at = utcnow()
            s.add(row)
            s.commit()
            return True

    def active_owner(self, key_hash: str) -> tuple[str, str] | None:
        """(name, stored hash) of the active key with this hash."""
        query = select(ApiKey.name, ApiKey.key_hash).where(ApiKey.key_hash == key_hash, col(ApiKey.revoked_at).is_(None))
        with Session(self.engine) as s:
            row = s.exec(query).first()
        return (row[0], row[1]) if row is not None else None
