from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from topictag.gateway.deps import ReadCacheDep
from topictag.gateway.protocol import PaperSummary, errors

router = APIRouter(prefix="/v1/search", tags=["papers"])


class SearchHit(PaperSummary):
    score: float


class SearchOut(BaseModel):
    items: list[SearchHit]


@router.get("", response_model=SearchOut, responses=errors(_503="Too many searches waiting; retry after Retry-After seconds"))
async def search(
    request: Request,
    cache: ReadCacheDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Free text, e.g. 'anomalies in sensor data'.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchOut:
    """Papers whose topic and title are nearest to ``q`` in meaning (all-MiniLM-L6-v2)."""

    def run() -> SearchOut:
        hits = request.app.state.search.search(q, limit)
        return SearchOut(items=[SearchHit.of(paper, score=round(score, 4)) for paper, score in hits])

    # Counted from here, in the event loop: a search waiting for a thread is already inside.
    with request.app.state.search_admission.admit():
        return await run_in_threadpool(cache.get, ("search", q, limit), run)
