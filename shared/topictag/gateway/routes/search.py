from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from topictag.gateway.deps import ReadCacheDep, StoreDep
from topictag.gateway.protocol import PaperSummary

router = APIRouter(prefix="/v1/search", tags=["papers"])


class SearchHit(PaperSummary):
    score: float


class SearchOut(BaseModel):
    items: list[SearchHit]


@router.get("", response_model=SearchOut)
def search(
    request: Request,
    store: StoreDep,
    cache: ReadCacheDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Free text, e.g. 'anomalies in sensor data'.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchOut:
    """Papers whose topic and title are nearest to ``q`` in meaning (all-MiniLM-L6-v2)."""

    def run() -> SearchOut:
        hits = request.app.state.search.search(q, limit)
        papers = store.papers_by_id([arxiv_id for arxiv_id, _ in hits])
        return SearchOut(items=[
            SearchHit(**PaperSummary.of(papers[arxiv_id]).model_dump(), score=round(score, 4))
            for arxiv_id, score in hits if arxiv_id in papers
        ])

    return cache.get(("search", q, limit), run)
