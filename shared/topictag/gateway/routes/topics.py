from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from topictag.gateway.deps import ReadCacheDep, StoreDep
from topictag.gateway.protocol import INT32_MAX, TopicCount, TopicCountsOut, errors
from topictag.topics import queries

router = APIRouter(prefix="/v1/topics", tags=["topics"])


class ClusterOut(BaseModel):
    id: int = Field(description="Stable cluster id.")
    label: str = Field(examples=["Anomaly Detection in Time Series"], description="Its most common topic.")
    papers: int
    topics: list[TopicCount] = Field(description="Its topic texts, most common first.")

    @classmethod
    def of(cls, c: queries.ClusterSummary) -> ClusterOut:
        return cls(id=c.id, label=c.label, papers=c.papers, topics=[TopicCount(topic=t, papers=n) for t, n in c.topics])


class ClustersOut(BaseModel):
    items: list[ClusterOut]


class TrendSeries(BaseModel):
    cluster_id: int
    label: str
    counts: list[int] = Field(description="Papers per week, aligned with `weeks`.")


class RisingCluster(BaseModel):
    cluster_id: int
    label: str
    recent: int = Field(description="Papers in the last third of the window.")
    earlier: int = Field(description="Papers before that.")
    growth: float = Field(description="Weekly rate now over the weekly rate before.")


class TrendsOut(BaseModel):
    weeks: list[str] = Field(description="First day of each week.")
    series: list[TrendSeries]
    rising: list[RisingCluster]


@router.get("", response_model=TopicCountsOut)
def topic_counts(
    store: StoreDep,
    cache: ReadCacheDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> TopicCountsOut:
    """Topic texts by number of papers, most common first."""
    return cache.get(
        ("topic_counts", limit, offset),
        lambda: TopicCountsOut(items=[TopicCount(topic=t, papers=n) for t, n in store.papers.topic_counts(limit, offset)]),
    )


@router.get("/clusters", response_model=ClustersOut)
def list_clusters(
    store: StoreDep,
    cache: ReadCacheDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> ClustersOut:
    """Clusters of near-duplicate topics, largest first."""
    return cache.get(
        ("clusters", limit, offset),
        lambda: ClustersOut(items=[ClusterOut.of(c) for c in queries.clusters(store, limit, offset)]),
    )


@router.get("/clusters/{cluster_id}", response_model=ClusterOut, responses=errors(_404="No such cluster"))
def get_cluster(cluster_id: Annotated[int, Path(ge=1, le=INT32_MAX)], store: StoreDep) -> ClusterOut:
    """One cluster with all its topic texts."""
    found = queries.cluster(store, cluster_id)
    if found is None:
        raise HTTPException(404, f"no topic cluster {cluster_id}")
    return ClusterOut.of(found)


@router.get("/trends", response_model=TrendsOut)
def topic_trends(
    store: StoreDep,
    cache: ReadCacheDep,
    weeks: Annotated[int, Query(ge=2, le=104)] = 12,
    limit: Annotated[int, Query(ge=1, le=50)] = 8,
) -> TrendsOut:
    """Papers per cluster per week for the largest clusters, and the fastest-rising ones."""
    return cache.get(("trends", weeks, limit), lambda: TrendsOut(**queries.trends(store, weeks, limit)))
