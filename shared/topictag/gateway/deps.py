"""Typed dependencies shared by the routes.

Async on purpose: FastAPI runs a plain ``def`` dependency in the thread pool, and a hop there
per dependency (waiting behind busy requests for a thread) only to read ``app.state``
was a cost every request paid under load."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from topictag.gateway.cache import ReadCache
from topictag.settings import Settings
from topictag.store import Store


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_read_cache(request: Request) -> ReadCache:
    return request.app.state.read_cache


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ReadCacheDep = Annotated[ReadCache, Depends(get_read_cache)]
