"""Teachers: the large model whose topics the student learns. Two backends behind one
interface: ``recorded`` (answers from a labels file) and ``openai`` (any OpenAI-compatible
chat endpoint, e.g. `vllm serve meta-llama/Meta-Llama-3-70B-Instruct`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from topictag.schemas import Paper
from topictag.settings import Settings


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


def create_teacher(settings: Settings) -> Teacher:
    if settings.teacher.backend == "openai":
        from topictag.teacher.openai import OpenAITeacher

        return OpenAITeacher(settings.teacher)
    from topictag.teacher.recorded import RecordedTeacher

    return RecordedTeacher(settings.teacher_labels_file, settings.teacher.model)
