# No `from __future__ import annotations`: the list route's limit is set per app, and
# FastAPI must see its annotations as objects.
from datetime import date
from typing import Annotated, TypedDict

from fastapi import APIRouter, HTTPException, Path, Query

from topictag.gateway.deps import ReadCacheDep, StoreDep
from topictag.gateway.protocol import (
    ARXIV_ID,
    INT32_MAX,
    NO_NUL,
    Day,
    PaperDetail,
    PaperPageOut,
    PaperSummary,
    errors,
    invalid,
)
from topictag.settings import Settings
from topictag.store import InvalidCursor


def router(settings: Settings) -> APIRouter:
    """The read routes; built per app so the schema states this gateway's largest page."""
    api = APIRouter(prefix="/v1/papers", tags=["papers"])
    api.get("/{arxiv_id:path}", response_model=PaperDetail, responses=errors(_404="No such paper"))(get_paper)
    api.get("", response_model=PaperPageOut, responses=errors(_400="The cursor is not one this API returned"))(
        _list_papers(settings.gateway.page_size_max)
    )
    return api


def get_paper(
    arxiv_id: Annotated[str, Path(max_length=64, pattern=ARXIV_ID, examples=["2503.11794"])], store: StoreDep
) -> PaperDetail:
    """One paper with its current topic and the topic every adapter version gave it."""
    found = store.papers.get(arxiv_id)
    if found is None:
        raise HTTPException(404, f"no paper with arxiv_id {arxiv_id!r}")
    return PaperDetail.of_history(*found)


class _ListQuery(TypedDict):
    """The arguments of ``PaperRepository.list_tagged``; their values also key the cache."""

    topic: str | None
    published_from: date | None
    published_to: date | None
    adapter_version: str | None
    category: str | None
    cluster_id: int | None
    cursor: str | None
    limit: int


def _list_papers(page_max: int):
    def list_papers(
        store: StoreDep,
        cache: ReadCacheDep,
        topic: Annotated[
            str | None, Query(max_length=200, pattern=NO_NUL, description="Words the topic contains (case-insensitive).")
        ] = None,
        published_from: Annotated[Day | None, Query(description="First day, inclusive (YYYY-MM-DD).")] = None,
        published_to: Annotated[Day | None, Query(description="Last day, inclusive (YYYY-MM-DD).")] = None,
        adapter_version: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        category: Annotated[
            str | None, Query(max_length=32, pattern=NO_NUL, examples=["cs.LG"], description="An arXiv category.")
        ] = None,
        cluster: Annotated[
            int | None, Query(ge=1, le=INT32_MAX, description="A topic cluster id (see /v1/topics/clusters).")
        ] = None,
        cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page.")] = None,
        limit: Annotated[int, Query(ge=1, le=page_max, description="Papers per page.")] = min(50, page_max),
    ) -> PaperPageOut:
        """Tagged papers, newest first, with cursor pagination."""
        if published_from and published_to and published_from > published_to:
            raise invalid("query", "published_from", "published_from is after published_to", str(published_from))
        query = _ListQuery(
            topic=topic,
            published_from=published_from,
            published_to=published_to,
            adapter_version=adapter_version,
            category=category,
            cluster_id=cluster,
            cursor=cursor,
            limit=limit,
        )

        def run() -> PaperPageOut:
            page = store.papers.list_tagged(**query)
            return PaperPageOut(items=[PaperSummary.of(p) for p in page.items], next_cursor=page.next_cursor)

        try:
            return cache.get(("papers", *query.values()), run)
        except InvalidCursor as exc:
            raise HTTPException(400, str(exc)) from None

    return list_papers
