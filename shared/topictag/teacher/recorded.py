"""A teacher that replays recorded answers: real teacher output, matched on abstract text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from topictag import metrics
from topictag.files import read_labels
from topictag.schemas import Paper
from topictag.teacher.base import Answer


def abstract_key(text: str) -> str:
    """Abstracts match whatever their line breaks and case (arXiv wraps them at ~80 columns)."""
    return " ".join(str(text).lower().split())


class RecordedTeacher:
    def __init__(self, path: Path, model: str):
        self.model = model
        frame = read_labels(path)
        self.answers: dict[str, str] = {}
        for abstract, topic in zip(frame["abstract"], frame["teacher_topic"]):
            # A blank or null cell in JSONL/Parquet is no answer, not the topic "None".
            text = "" if pd.isna(topic) else str(topic).strip().strip('"').strip()
            if text:
                self.answers[abstract_key(abstract)] = text

    def label(self, papers: Sequence[Paper]) -> list[Answer]:
        out: list[Answer] = []
        for paper in papers:
            topic = self.answers.get(abstract_key(paper.abstract))
            if topic is None:
                # Never invented: a paper the recording does not cover gets no label.
                metrics.TEACHER_UNKNOWN.inc()
            out.append(topic)
        return out

    def close(self) -> None:
        pass
