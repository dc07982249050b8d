"""Teacher labels, and the sampled papers parked until the teacher can label them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import pandas as pd
from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from topictag.schemas import Paper
from topictag.store.engine import upsert, utcnow
from topictag.store.models import ParkedPaper, TeacherLabel, table_of

TRAINING_COLUMNS = ["label_id", "arxiv_id", "title", "abstract", "teacher_topic"]


class TeacherLabelRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def save(self, labels: Sequence[TeacherLabel]) -> None:
        """Idempotent on (paper, teacher model): a replayed label updates its row."""
        rows = [
            {k: getattr(label, k) for k in ("arxiv_id", "abstract", "title", "topic", "teacher_model", "labelled_at")}
            for label in labels
        ]
        if rows:
            statement = upsert(self.engine, table_of(TeacherLabel), ["arxiv_id", "teacher_model"], ["topic", "labelled_at"])
            with self.engine.begin() as conn:
                conn.execute(statement, rows)

    def labelled_ids(self, arxiv_ids: Sequence[str], teacher_model: str) -> set[str]:
        query = select(TeacherLabel.arxiv_id).where(
            col(TeacherLabel.arxiv_id).in_(list(arxiv_ids)), TeacherLabel.teacher_model == teacher_model
        )
        with Session(self.engine) as s:
            return set(s.exec(query).all())

    def count(self, after_id: int = 0) -> int:
        """Labels stored, or those newer than label ``after_id``."""
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(TeacherLabel).where(col(TeacherLabel.id) > after_id)).one()

    def newest_id(self) -> int:
        with Session(self.engine) as s:
            return cast(int, s.exec(select(func.coalesce(func.max(TeacherLabel.id), 0))).one())  # COALESCE: never NULL

    def last_labelled_at(self) -> datetime | None:
        with Session(self.engine) as s:
            return s.exec(select(func.max(TeacherLabel.labelled_at))).one()

    def training_frame(self) -> pd.DataFrame:
        """Every label, oldest first, as training rows (TRAINING_COLUMNS)."""
        query = select(TeacherLabel.id, TeacherLabel.arxiv_id, TeacherLabel.title, TeacherLabel.abstract,
                       TeacherLabel.topic).order_by(col(TeacherLabel.id))  # type: ignore[call-overload]  # sqlmodel types select() up to 4 columns
        with Session(self.engine) as s:
            rows = s.exec(query).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=TRAINING_COLUMNS)


class ParkedPaperRepository:
    def __init__(self, engine: Engine):
        self.engine = engine

    def park(self, paper: Paper, reason: str, retry_at: datetime, attempts: int = 1) -> None:
        row = {"arxiv_id": paper.arxiv_id, "payload": paper.model_dump_json(), "reason": reason,
               "attempts": attempts, "parked_at": utcnow(), "next_attempt_at": retry_at}
        with self.engine.begin() as conn:
            conn.execute(upsert(self.engine, table_of(ParkedPaper), ["arxiv_id"], ["reason", "attempts", "next_attempt_at"]), [row])

    def due(self, now: datetime, limit: int) -> list[ParkedPaper]:
        query = (select(ParkedPaper).where(col(ParkedPaper.next_attempt_at) <= now)
                 .order_by(col(ParkedPaper.next_attempt_at)).limit(limit))
        with Session(self.engine) as s:
            return list(s.exec(query).all())

    def unpark(self, arxiv_ids: Sequence[str]) -> None:
        if arxiv_ids:
            with self.engine.begin() as conn:
                conn.execute(delete(ParkedPaper).where(col(ParkedPaper.arxiv_id).in_(list(arxiv_ids))))

    def count(self) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.count()).select_from(ParkedPaper)).one()
