"""Messages on the bus: a paper in, a tag result out, and why a message was refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from topictag.settings import PaperLimits

# Control characters other than tab and newline never belong in a title or abstract.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # terminal colours and the like: removed whole
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-/_]*$")


class InvalidPaper(ValueError):
    """A message that is not a paper we can tag; ``reason`` says why, for the DLQ."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Paper(BaseModel):
    """A paper as it travels on the ``papers`` topic."""

    model_config = ConfigDict(populate_by_name=True, str_strip_whitespace=True)

    arxiv_id: str = Field(min_length=1, examples=["2503.11794"])
    title: str = Field("", examples=["Semantic-Clipping: Efficient Vision-Language Modeling"])
    abstract: str = Field(min_length=1)
    categories: list[str] = Field(default_factory=list, examples=[["cs.CV", "cs.LG"]])
    published: date | None = Field(
        None,
        validation_alias="published",
        description="Day the paper appeared (the stream's first_seen_date).",
    )

    @field_validator("arxiv_id")
    @classmethod
    def _id_is_plain(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("arxiv_id may hold only letters, digits and . - / _")
        return v

    @field_validator("title", "abstract")
    @classmethod
    def _no_control_chars(cls, v: str, info: ValidationInfo) -> str:
        v = _CONTROL.sub(" ", _ANSI_ESCAPE.sub("", v)).strip()
        if not v and info.field_name == "abstract":
            raise ValueError("must not be empty (nothing but control characters)")
        return v

    @field_validator("categories", mode="before")
    @classmethod
    def _split_categories(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return v.split()
        return v

    @field_validator("categories")
    @classmethod
    def _plain_categories(cls, v: list[str]) -> list[str]:
        # Stored space-joined; PostgreSQL refuses NUL and the store would retry forever.
        return [c for c in (_CONTROL.sub("", c).strip() for c in v) if c]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def paper_from_record(record: dict[str, Any]) -> Paper:
    """Build a paper from a row of a file or API body, accepting the stream's column names."""
    row = dict(record)
    if "published" not in row and "first_seen_date" in row:
        row["published"] = row.pop("first_seen_date")
    for key in ("title", "published"):
        if row.get(key) in ("", None) or (isinstance(row.get(key), float) and row[key] != row[key]):
            row.pop(key, None)
    return Paper.model_validate(row)


def decode_paper(value: bytes | None, limits: PaperLimits) -> Paper:
    """Decode and validate one ``papers`` message, or raise InvalidPaper with the reason."""
    if value is None:
        raise InvalidPaper("empty message (tombstone)")
    if len(value) > limits.max_message_bytes:
        raise InvalidPaper(f"message is {len(value)} bytes, over the {limits.max_message_bytes}-byte limit")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPaper(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPaper(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidPaper("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
        raise InvalidPaper(f"invalid JSON: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise InvalidPaper(f"expected a JSON object, got {type(data).__name__}")
    try:
        paper = paper_from_record(data)
    except ValidationError as exc:
        raise InvalidPaper(describe_validation_error(exc)) from None
    check_limits(paper, limits)
    return paper


def check_limits(paper: Paper, limits: PaperLimits) -> None:
    if len(paper.abstract) > limits.max_abstract_chars:
        raise InvalidPaper(
            f"abstract is {len(paper.abstract)} characters, over the {limits.max_abstract_chars} limit"
        )
    if len(paper.title) > limits.max_title_chars:
        raise InvalidPaper(f"title is {len(paper.title)} characters, over the {limits.max_title_chars} limit")
    if len(paper.arxiv_id) > limits.max_id_chars:
        raise InvalidPaper(f"arxiv_id is over {limits.max_id_chars} characters")


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "message"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "string_too_short":
            msg = "must not be empty"
        parts.append(f"{field} {msg}")
    return "; ".join(parts)


class TagResult(BaseModel):
    """What a tagger says about one paper, on ``papers.tagged`` and in the store."""

    arxiv_id: str
    topic: str = Field(examples=["Anomaly Detection in Industrial Time Series"])
    adapter_version: str = Field(
        description="Adapter that produced the topic; 'base' for the un-adapted student."
    )
    model: str = Field(description="Student base model.")
    latency_ms: float = Field(description="Engine time for the batch, divided over its papers.")
    confidence: float | None = Field(
        None,
        description="Mean log-probability of the student's tokens for this topic (0 is certain, lower is less "
        "sure); null where the student was not asked (an abstract with nothing to tag).",
    )
    tagged_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


BASE_ADAPTER = "base"
