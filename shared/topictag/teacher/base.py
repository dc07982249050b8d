"""What a teacher is: the interface both backends implement, and its answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from topictag.schemas import Paper


@dataclass(frozen=True)
class Failure:
    """The teacher could not answer for this paper now (outage, timeout, garbage)."""

    reason: str


# What a teacher says about one paper: a topic, None (it has no label for it and never
# will: the paper is skipped), or a Failure (try again later).
Answer = str | None | Failure


class Teacher(Protocol):
    model: str

    def label(self, papers: Sequence[Paper]) -> list[Answer]: ...

    def close(self) -> None: ...
