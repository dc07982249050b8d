"""Which papers should the teacher label? The labeler's confidence policy against its uniform
policy, at the same label budget, by the quality of the student distilled from each.

    .venv/bin/python -m bench.sampling [--budgets 150 300] [--uniform-draws 3] [--scorer-adapter DIR]
    .venv/bin/python -m bench.sampling --report    # the table and plot of bench/results/sampling.json

The pool is the training rows of the dev labels (the held-out rows are never trained on).
The student scores every pool paper as a tagger would (the base model with the tagger's
prompt, or --scorer-adapter: the adapter a tagger would be serving), which gives each paper
the confidence a tag result carries. For each budget, the labeler's policies pick from the
pool in stream order: `ConfidenceSampler` (the papers the student was least sure of) and
uniform samples (--uniform-draws of them, as their spread is the noise any difference must
beat). `topictag distill` trains an adapter on each pick with its default settings, and each
adapter is scored on the held-out rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import RESULTS, dev_split, write
from topictag.labeler.sampling import ConfidenceSampler
from topictag.schemas import Paper
from topictag.settings import get_settings
from topictag.student.engine import Adapter
from topictag.student.factory import create_engine


def confidences(pool: pd.DataFrame, scorer_adapter: Path | None) -> list[float]:
    settings = get_settings()
    engine = create_engine(settings)
    if scorer_adapter:
        engine.use_adapter(Adapter("scorer", scorer_adapter, lora_id=1))
    papers = [Paper(arxiv_id=f"pool-{i}", abstract=a) for i, a in enumerate(pool["abstract"])]
    out = [p.confidence for i in range(0, len(papers), 64) for p in engine.predict(papers[i : i + 64])]
    engine.close()
    return out


def confidence_pick(pool: pd.DataFrame, scores: list[float], budget: int) -> pd.DataFrame:
    """What the labeler's confidence policy takes from the pool as a stream, at the rate that
    spends ``budget`` labels on it (cut to the budget where it took a few more)."""
    labeler = get_settings().labeler
    sampler = ConfidenceSampler(budget / len(pool), window=labeler.confidence_window, warmup=labeler.confidence_warmup)
    taken = [i for i, c in enumerate(scores) if sampler.wants(f"pool-{i}", c)]
    return pool.iloc[taken[:budget]]


def distil_and_score(train: pd.DataFrame, held_out_csv: Path, workdir: Path, name: str) -> dict:
    labels = workdir / f"{name}.csv"
    train[["abstract", "teacher_topic"]].to_csv(labels, index=False)
    out = workdir / name
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "topictag", "distill", "--labels", str(labels), "--eval", str(held_out_csv),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "metrics.json").read_text())
    metrics = summary["metrics"]
    return {k: metrics[k] for k in ("bleu3", "rouge1_f", "original_bleu", "embedding_similarity")} | {
        "labels": len(train), "train_seconds": summary["train_seconds"], "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", type=int, nargs="+", default=[150, 300], help="teacher labels per arm")
    parser.add_argument("--uniform-draws", type=int, default=3)
    parser.add_argument("--scorer-adapter", type=Path, help="the adapter that scores the pool (default: base model)")
    parser.add_argument("--report", action="store_true", help="only print and plot the runs already in sampling.json")
    args = parser.parse_args()
    if args.report:
        report(json.loads((RESULTS / "sampling.json").read_text())["runs"])
        return
    pool, held_out = dev_split()
    started = time.monotonic()
    scores = confidences(pool, args.scorer_adapter)
    scoring_s = time.monotonic() - started
    meta = {"pool_rows": len(pool), "held_out_rows": len(held_out),
            "scorer": str(args.scorer_adapter) if args.scorer_adapter else "base model, the tagger's prompt",
            "pool_scoring_s": round(scoring_s, 1)}
    rows: list[dict] = []

    def record(row: dict) -> None:  # written after every run: a stopped benchmark keeps what it measured
        rows.append(row)
        print(json.dumps(row), flush=True)
        write("sampling", meta | {"runs": rows})

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        held_out_csv = workdir / "held_out.csv"
        held_out[["abstract", "teacher_topic"]].to_csv(held_out_csv, index=False)
        for budget in args.budgets:
            picked = confidence_pick(pool, scores, budget)
            n = len(picked)  # the uniform draws get exactly as many labels
            run = distil_and_score(picked, held_out_csv, workdir, f"confidence-{budget}")
            mean_conf = sum(scores[i] for i in picked.index) / n
            record({"policy": "confidence", "budget": budget, "draw": 0, "mean_confidence": round(mean_conf, 4)} | run)
            for draw in range(args.uniform_draws):
                sample = pool.sample(n=n, random_state=draw)
                run = distil_and_score(sample, held_out_csv, workdir, f"uniform-{budget}-{draw}")
                mean_conf = sum(scores[i] for i in sample.index) / n
                record({"policy": "uniform", "budget": budget, "draw": draw, "mean_confidence": round(mean_conf, 4)} | run)
    report(rows)


def report(rows: list[dict]) -> None:
    table = pd.DataFrame(rows)
    summary = (table.groupby(["budget", "policy"])[["labels", "bleu3", "rouge1_f", "original_bleu", "embedding_similarity"]]
               .agg(["mean", "min", "max"]).round(2))
    print(summary.to_markdown())
    plot(table)


def plot(table: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, metric, label in ((axes[0], "rouge1_f", "ROUGE-1 F (%)"), (axes[1], "bleu3", "BLEU-3")):
        for policy, colour, marker in (("uniform", "#9aa3b5", "o"), ("confidence", "#2f6fdf", "D")):
            part = table[table.policy == policy]
            ax.scatter(part.labels, part[metric], color=colour, marker=marker, label=policy, zorder=3)
            means = part.groupby("budget")[[metric, "labels"]].mean()
            ax.plot(means.labels, means[metric], color=colour)
        ax.set_xlabel("teacher labels")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Distilled student on held-out rows, by which papers the teacher labelled")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "sampling.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
