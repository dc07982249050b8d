"""Training data from teacher labels, and the frozen evaluation split."""

from __future__ import annotations

import hashlib

import pandas as pd
from datasets import Dataset

from topictag.settings import Settings
from topictag.student.prompt import build_messages


def split_key(row: dict) -> str:
    """What decides a row's split: its paper id, or its abstract text when it has none."""
    arxiv_id = str(row.get("arxiv_id") or "").strip()
    if arxiv_id:
        return arxiv_id
    return " ".join(str(row["abstract"]).lower().split())


def in_eval_split(key: str, fraction: float) -> bool:
    """Deterministic by key, the same on every machine and run: once in the evaluation
    split, a paper stays there and is never trained on."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_labels(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, frozen evaluation) rows of a labels frame."""
    mask = [in_eval_split(split_key(r), fraction) for r in frame.to_dict(orient="records")]
    held = pd.Series(mask, index=frame.index, dtype=bool)
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def to_sft_dataset(frame: pd.DataFrame, tokenizer, settings: Settings) -> Dataset:
    """trl's prompt-completion chat format: the tagger's bare prompt (no few-shot examples)
    as the prompt and the teacher's topic as the completion, so the loss is on the topic."""
    limit = settings.distill.max_abstract_tokens

    def cut(text: str) -> str:
        ids = tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= limit else tokenizer.decode(ids[:limit])

    rows = []
    for r in frame.to_dict(orient="records"):
        prompt = build_messages(str(r["abstract"]), str(r.get("title") or ""), few_shot=False, truncate=cut)
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": str(r["teacher_topic"]).strip().strip('"')}]})
    return Dataset.from_list(rows)
