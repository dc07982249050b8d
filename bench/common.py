"""Shared by the benchmarks: the held-out split of the dev labels, results on disk, plots."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from topictag.distill.dataset import split_labels
from topictag.files import read_labels
from topictag.settings import get_settings

RESULTS = Path(__file__).parent / "results"


def dev_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) rows of the recorded teacher's labels, by the trainer's own rule."""
    settings = get_settings()
    return split_labels(read_labels(settings.teacher_labels_file), settings.trainer.eval_fraction)


def machine() -> dict:
    from topictag.hardware import cpuinfo_field, native_bf16

    return {
        "cpu": cpuinfo_field("model name") or platform.processor() or platform.machine(),
        "native_bf16": native_bf16(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result | {"machine": machine()}, indent=2, default=str) + "\n")
    print(json.dumps(result, default=str))
    return path


def bar_chart(name: str, labels: list[str], values: list[float], ylabel: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(labels, values, color=["#9aa3b5"] * (len(values) - 1) + ["#2f6fdf"])
    ax.bar_label(bars, fmt="%.2f")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
