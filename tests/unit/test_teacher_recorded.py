"""The recorded teacher: real teacher answers matched on normalised abstract text; a paper
it has no answer for gets none (counted), never an invented one."""

from __future__ import annotations

import json

import pandas as pd
from prometheus_client import REGISTRY

from topictag.schemas import Paper
from topictag.settings import Settings
from topictag.teacher import create_teacher
from topictag.teacher.recorded import RecordedTeacher

PAPER = Paper(arxiv_id="2601.00001", abstract="We detect anomalies\nin sensor data.")


def unknown_count() -> float:
    return REGISTRY.get_sample_value("topictag_teacher_unknown_total") or 0.0


def test_matches_normalised_text_and_counts_what_it_does_not_know(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text('abstract,teacher_topic\n"  We  detect ANOMALIES in   sensor data.","""Anomaly Detection"""\n')
    teacher = RecordedTeacher(labels, "llama-70b")
    before = unknown_count()
    other = Paper(arxiv_id="x", abstract="Something the teacher never saw.")
    assert teacher.label([PAPER, other, other]) == ["Anomaly Detection", None, None]
    assert unknown_count() == before + 2


def test_jsonl_with_a_topic_column_and_blank_answers(tmp_path):
    labels = tmp_path / "labels.jsonl"
    rows = [{"abstract": PAPER.abstract, "topic": "Sensor Anomalies"}, {"abstract": "Blank answer.", "topic": None}]
    labels.write_text("\n".join(json.dumps(r) for r in rows))
    teacher = RecordedTeacher(labels, "gpt-4")
    assert teacher.label([PAPER, Paper(arxiv_id="b", abstract="Blank answer.")]) == ["Sensor Anomalies", None]


def test_parquet(tmp_path):
    labels = tmp_path / "labels.parquet"
    pd.DataFrame({"abstract": [PAPER.abstract], "teacher_topic": ["Sensor Anomalies"]}).to_parquet(labels)
    assert RecordedTeacher(labels, "t").label([PAPER]) == ["Sensor Anomalies"]


def test_default_teacher_knows_the_bundled_labels(teacher_labels):
    teacher = create_teacher(Settings())  # recorded, on the bundled teacher labels
    dev = teacher_labels.head(5)
    papers = [Paper(arxiv_id=f"dev-{r}", abstract=a) for r, a in zip(dev["row"], dev["abstract"])]
    assert teacher.label(papers) == dev["teacher_topic"].tolist()
    assert teacher.model == Settings().teacher.model
