"""API keys for the gateway's write endpoints: random tokens shown once, stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader

from topictag.gateway.deps import StoreDep
from topictag.gateway.protocol import errors
from topictag.store import Store

_PREFIX = "tt_"
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A key from `topictag apikey create`.")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, name: str) -> str:
    """A new key named ``name``; the key itself is returned once and never stored."""
    key = _PREFIX + secrets.token_urlsafe(32)
    store.api_keys.add(name, _hash(key))
    return key


def revoke_key(store: Store, name: str) -> bool:
    return store.api_keys.revoke(name)


def key_owner(store: Store, key: str) -> str | None:
    digest = _hash(key)
    found = store.api_keys.active_owner(digest)
    # Compare digests in constant time even though the lookup was by digest.
    return found[0] if found is not None and hmac.compare_digest(found[1], digest) else None


def require_api_key(store: StoreDep, key: Annotated[str | None, Security(_header)] = None) -> str:
    if not key:
        raise HTTPException(401, "this endpoint needs an API key in the X-API-Key header")
    owner = key_owner(store, key)
    if owner is None:
        raise HTTPException(403, "API key is not valid or was revoked")
    return owner


ApiKeyDep = Annotated[str, Depends(require_api_key)]
# Documented on every route that needs a key.
AUTH_ERRORS = errors(_401="No API key in the X-API-Key header", _403="The API key is not valid or was revoked")
