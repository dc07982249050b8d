"""Teachers: the large model whose topics the student learns. Two backends behind one
interface: ``recorded`` (answers from a labels file) and ``openai`` (any OpenAI-compatible
chat endpoint, e.g. `vllm serve meta-llama/Meta-Llama-3-70B-Instruct`)."""

from __future__ import annotations

from topictag.settings import Settings
from topictag.teacher.base import Answer, Failure, Teacher

__all__ = ["Answer", "Failure", "Teacher", "create_teacher"]


def create_teacher(settings: Settings) -> Teacher:
    if settings.teacher.backend == "openai":
        from topictag.teacher.openai import OpenAITeacher

        return OpenAITeacher(settings.teacher)
    from topictag.teacher.recorded import RecordedTeacher

    return RecordedTeacher(settings.teacher_labels_file, settings.teacher.model)
