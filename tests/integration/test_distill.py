"""Distillation on the real student: a tiny training writes a whole adapter or nothing,
and the tagger's engine serves what it wrote."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from transformers import TrainerCallback

from topictag.adapters.registry import adapter_sha256
from topictag.distill.dataset import in_eval_split, split_key, split_labels
from topictag.distill.train import distill
from topictag.settings import DistillSettings, Settings
from topictag.student.engine import Adapter, lora_id_for

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def labels(teacher_labels) -> pd.DataFrame:
    return teacher_labels


def tiny(**kw) -> Settings:
    return Settings(distill=DistillSettings(max_steps=2, batch_size=2, max_abstract_tokens=64, warmup_steps=0, **kw))


def test_split_is_deterministic_disjoint_and_sized(labels):
    train, held = split_labels(labels, 0.2)
    again_train, again_held = split_labels(labels.sample(frac=1, random_state=1), 0.2)
    assert set(held["abstract"]) == set(again_held["abstract"])  # order of rows does not matter
    assert not set(train["abstract"]) & set(held["abstract"])
    assert len(train) + len(held) == len(labels)
    assert 0.15 < len(held) / len(labels) < 0.25
    assert in_eval_split("2503.11794", 0.2) == in_eval_split("2503.11794", 0.2)
    # The paper id decides when there is one; otherwise the abstract, however it is spaced or cased.
    assert split_key({"arxiv_id": "2503.11794", "abstract": "A b"}) == "2503.11794"
    assert split_key({"arxiv_id": "", "abstract": " A  b\n"}) == split_key({"abstract": "a b"})


def test_tiny_training_writes_a_servable_adapter(labels, tmp_path, student_engine):
    out = tmp_path / "v1"
    result = distill(tiny(), labels.head(16), out, eval=labels.tail(4), engine=student_engine)
    assert {"adapter_config.json", "adapter_model.safetensors", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert result.sha256 == adapter_sha256(out)
    written = json.loads((out / "metrics.json").read_text())
    assert written["sha256"] == result.sha256 and written["n_train"] == 16 and written["n_eval"] == 4
    assert set(written["metrics"]) >= {"bleu3", "rouge1_f", "original_bleu", "embedding_similarity", "papers_per_s"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    from topictag.schemas import Paper

    student_engine.use_adapter(Adapter("test-distill-v1", out, lora_id=lora_id_for(result.sha256)))
    try:
        [prediction] = student_engine.predict([Paper(arxiv_id="x", abstract=labels["abstract"][0])])
        assert prediction.topic and "\n" not in prediction.topic and 1 <= len(prediction.topic.split()) <= 12
    finally:
        student_engine.use_adapter(None)
    with pytest.raises(FileExistsError):
        distill(tiny(), labels.head(4), out)


class Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        raise RuntimeError("killed mid-training")


def test_crash_mid_training_leaves_nothing(labels, tmp_path):
    out = tmp_path / "v2"
    with pytest.raises(RuntimeError, match="killed mid-training"):
        distill(tiny(), labels.head(8), out, callbacks=[Crash()])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
