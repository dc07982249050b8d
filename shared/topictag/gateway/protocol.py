"""Request and response models of the gateway API."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Self

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, Field

from topictag.store.models import PaperRecord, TopicAssignment

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def _iso_day(v: object) -> object:
    # pydantic also reads a number (or a string of digits) as Unix time; a day here is YYYY-MM-DD.
    if not isinstance(v, date) and not (isinstance(v, str) and _DAY.match(v)):
        raise ValueError("must be a day as YYYY-MM-DD")
    return v


Day = Annotated[date, BeforeValidator(_iso_day)]


class ErrorOut(BaseModel):
    """Every error the gateway answers itself (validation errors have FastAPI's shape)."""

    detail: str = Field(examples=["no paper with arxiv_id '9999.99999'"])


def errors(**codes: str) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for error statuses: ``errors(_404="No such paper")``."""
    return {int(code.lstrip("_")): {"model": ErrorOut, "description": text} for code, text in codes.items()}


# Query text goes into SQL as bound parameters; NUL is the one character PostgreSQL refuses in them.
NO_NUL = r"^[^\x00]*$"
# What the papers topic accepts as an id (topictag.schemas.Paper).
ARXIV_ID = r"^[A-Za-z0-9][A-Za-z0-9.\-/_]*$"
# Ids and offsets fit the store's 32-bit integer columns.
INT32_MAX = 2**31 - 1


def invalid(location: str, name: str, message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own shape, for rules that depend on settings (so the schema cannot say them)."""
    return RequestValidationError([{"type": "value_error", "loc": (location, name), "msg": message, "input": value}])


class TopicVersion(BaseModel):
    adapter_version: str = Field(examples=["v3"])
    topic: str = Field(examples=["Anomaly Detection in Industrial Time Series"])
    tagged_at: datetime


class PaperSummary(BaseModel):
    arxiv_id: str = Field(examples=["2503.11794"])
    title: str
    categories: list[str] = Field(examples=[["cs.CV", "cs.LG"]])
    published: date | None
    topic: str | None = Field(examples=["Efficient Vision-Language Models"])
    adapter_version: str | None = Field(examples=["base"])
    tagged_at: datetime | None

    @classmethod
    def of(cls, p: PaperRecord, **extra) -> Self:
        """The summary of a stored paper; ``extra``: the fields a subclass adds."""
        return cls(
            arxiv_id=p.arxiv_id,
            title=p.title,
            categories=p.categories.split(),
            published=p.published,
            topic=p.topic,
            adapter_version=p.adapter_version,
            tagged_at=p.tagged_at,
            **extra,
        )


class PaperDetail(PaperSummary):
    abstract: str
    model: str | None
    history: list[TopicVersion] = Field(description="Topics each adapter version gave this paper, oldest first.")

    @classmethod
    def of_history(cls, p: PaperRecord, history: list[TopicAssignment]) -> PaperDetail:
        return cls.of(
            p,
            abstract=p.abstract,
            model=p.model,
            history=[TopicVersion(adapter_version=h.adapter_version, topic=h.topic, tagged_at=h.tagged_at) for h in history],
        )


class PaperPageOut(BaseModel):
    items: list[PaperSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class TopicCount(BaseModel):
    topic: str
    papers: int


class TopicCountsOut(BaseModel):
    items: list[TopicCount]


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    checks: dict[str, str] = Field(examples=[{"store": "ok", "broker": "ok"}])
