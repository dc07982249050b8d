from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from topictag.gateway.deps import SettingsDep, StoreDep
from topictag.status import teacher_agreement

router = APIRouter(prefix="/v1/stats", tags=["ops"])


class Agreement(BaseModel):
    adapter_version: str
    papers: int = Field(description="Sampled papers this version tagged that have a teacher label.")
    rouge1_f: float = Field(description="ROUGE-1 F between the student's and the teacher's topics (as training scores it), in %.")


class LagOut(BaseModel):
    group: str
    lag: int | None = Field(description="Messages not yet committed by the group; null if the broker is unreachable.")


class StatsOut(BaseModel):
    papers_tagged: int
    teacher_labels: int
    agreement: list[Agreement]
    lag: list[LagOut]


def _lag(settings) -> list[LagOut]:
    from topictag.status import consumer_lags

    # A stats page renders without the broker: its lag is then unknown (null).
    lags, _ = consumer_lags(settings, timeout_s=10.0)
    return [LagOut(group=g.group, lag=g.lag) for g in lags]


@router.get("", response_model=StatsOut)
def stats(store: StoreDep, settings: SettingsDep) -> StatsOut:
    """Counts, teacher-student agreement per adapter version, and consumer lag."""
    tagged, labels = store.papers.count_tagged(), store.teacher_labels.count()
    agreement = [Agreement(adapter_version=v, papers=n, rouge1_f=r) for v, n, r in teacher_agreement(store)]
    return StatsOut(papers_tagged=tagged, teacher_labels=labels, agreement=agreement, lag=_lag(settings))
