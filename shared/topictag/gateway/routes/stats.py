from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, select

from topictag.gateway.deps import SettingsDep, StoreDep
from topictag.store.models import PaperRecord, TeacherLabel

router = APIRouter(prefix="/v1/stats", tags=["ops"])


class Agreement(BaseModel):
    adapter_version: str
    papers: int = Field(description="Sampled papers this version tagged that have a teacher label.")
    rouge1_f: float = Field(description="Mean unigram F1 between the student's and the teacher's topic, in %.")


class LagOut(BaseModel):
    group: str
    lag: int | None = Field(description="Messages not yet committed by the group; null if the broker is unreachable.")


class StatsOut(BaseModel):
    papers_tagged: int
    teacher_labels: int
    agreement: list[Agreement]
    lag: list[LagOut]


def unigram_f1(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    common = len(x & y)
    if not common:
        return 0.0
    p, r = common / len(x), common / len(y)
    return 2 * p * r / (p + r)


def _lag(settings) -> list[LagOut]:
    from topictag.status import consumer_lags

    # A stats page renders without the broker: its lag is then unknown (null).
    lags, _ = consumer_lags(settings, timeout_s=10.0)
    return [LagOut(group=g.group, lag=g.lag) for g in lags]


@router.get("", response_model=StatsOut)
def stats(store: StoreDep, settings: SettingsDep) -> StatsOut:
    """Counts, teacher-student agreement per adapter version, and consumer lag."""
    with Session(store.engine) as s:
        tagged = s.exec(select(func.count()).select_from(PaperRecord).where(PaperRecord.topic != None)).one()  # noqa: E711
        labels = s.exec(select(func.count()).select_from(TeacherLabel)).one()
        pairs = s.exec(
            select(PaperRecord.adapter_version, PaperRecord.topic, TeacherLabel.topic)
            .join(TeacherLabel, TeacherLabel.arxiv_id == PaperRecord.arxiv_id)
            .where(PaperRecord.topic != None)  # noqa: E711
        ).all()
    by_version: dict[str, list[float]] = {}
    for version, student, teacher in pairs:
        by_version.setdefault(version or "base", []).append(unigram_f1(student, teacher))
    agreement = [
        Agreement(adapter_version=v, papers=len(xs), rouge1_f=round(100 * sum(xs) / len(xs), 2))
        for v, xs in sorted(by_version.items())
    ]
    return StatsOut(papers_tagged=tagged, teacher_labels=labels, agreement=agreement, lag=_lag(settings))
