"""Reading papers and labels from the files users have: JSONL, CSV or Parquet."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

SUPPORTED = (".jsonl", ".json", ".csv", ".parquet")


def read_table(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    if suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, dtype=str)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(f"{path.name}: unsupported file type; use one of {', '.join(SUPPORTED)}")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    return value


def iter_paper_records(path: Path | str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a papers file as plain dicts with the stream's field names, unvalidated:
    validation belongs to the consumer, which dead-letters what it cannot use."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":  # stream it: a JSONL file may be larger than memory
        with path.open(encoding="utf-8") as fh:
            n = 0
            for line in fh:
                if limit is not None and n >= limit:
                    return
                if not line.strip():
                    continue
                n += 1
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    yield {"_raw": line.rstrip("\n")}
        return
    frame = read_table(path)
    if limit is not None:
        frame = frame.head(limit)
    for row in frame.to_dict(orient="records"):
        yield {k: _clean(v) for k, v in row.items()}


def read_labels(path: Path | str) -> pd.DataFrame:
    """A teacher-labels file: an ``abstract`` column and ``teacher_topic`` (or ``topic``)."""
    frame = read_table(path)
    if "teacher_topic" not in frame.columns and "topic" in frame.columns:
        frame = frame.rename(columns={"topic": "teacher_topic"})
    missing = {"abstract", "teacher_topic"} - set(frame.columns)
    if missing:
        raise ValueError(f"{Path(path).name}: missing column(s) {', '.join(sorted(missing))}")
    return frame
