"""Quality on the held-out dev rows: the base student with the tagger's prompt, a student
distilled with `topictag distill`'s defaults (trained on the other rows only), and the
original 8B student's recorded predictions for the same rows.

    .venv/bin/python -m bench.quality [--adapter DIR] [--mbr 4 8] [--cuts 256]

Without --adapter it trains one into bench/results/adapter (once). --mbr N adds a row for the
distilled student with minimum-Bayes-risk decoding over the greedy answer and N samples
(TOPICTAG_STUDENT_MBR_SAMPLES), beside greedy, on the same engine in the same run. --cuts N
adds a row for the distilled student served abstracts cut at N tokens
(TOPICTAG_STUDENT_MAX_ABSTRACT_TOKENS) instead of the tagger's setting.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.common import RESULTS, bar_chart, dev_split, write
from topictag.evaluation import score
from topictag.schemas import Paper
from topictag.settings import get_settings
from topictag.student.engine import Adapter, create_engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--mbr", type=int, nargs="*", default=[], help="MBR sample counts to score too")
    parser.add_argument("--cuts", type=int, nargs="*", default=[], help="abstract cuts (tokens) to serve at too")
    args = parser.parse_args()
    settings = get_settings()
    adapter_dir = args.adapter
    if adapter_dir is None:
        adapter_dir = RESULTS / "adapter"
        if not adapter_dir.exists():
            subprocess.run([sys.executable, "-m", "topictag", "distill", "--labels", str(settings.teacher_labels_file),
                            "--out", str(adapter_dir)], check=True)
    _, held_out = dev_split()
    papers = [Paper(arxiv_id=f"row-{i}", abstract=a) for i, a in enumerate(held_out["abstract"])]
    refs = held_out["teacher_topic"].tolist()
    engine = create_engine(settings)
    rows = {}
    distilled = Adapter("bench", adapter_dir, lora_id=1)
    cut = settings.student.max_abstract_tokens
    runs = [("base SmolLM2, the tagger's prompt", None, 0, cut), ("distilled student (topictag distill)", distilled, 0, cut)]
    runs += [(f"distilled student, MBR over greedy + {n} samples", distilled, n, cut) for n in args.mbr]
    runs += [(f"distilled student, abstracts cut at {c} tokens", distilled, 0, c) for c in args.cuts]
    for name, adapter, mbr_samples, max_abstract_tokens in runs:
        engine.use_adapter(adapter)
        engine.settings = settings.model_copy(update={"student": settings.student.model_copy(
            update={"mbr_samples": mbr_samples, "max_abstract_tokens": max_abstract_tokens})})
        started = time.monotonic()
        topics = [p.topic for i in range(0, len(papers), 64) for p in engine.predict(papers[i : i + 64])]
        rows[name] = score(topics, refs) | {"papers_per_s": round(len(papers) / (time.monotonic() - started), 2)}
    engine.close()
    rows["original 8B student (recorded predictions)"] = score(held_out["original_student_prediction"].tolist(), refs)
    result = {"held_out_rows": len(held_out), "adapter": str(adapter_dir), "serving_cut": cut, "table": rows}
    write("quality", result)
    table = pd.DataFrame(rows).T[["bleu3", "rouge1_f", "original_bleu", "embedding_similarity"]]
    print(table.to_markdown())
    labels = ["base", "distilled", *(f"MBR {n}" for n in args.mbr), *(f"cut {c}" for c in args.cuts), "original 8B"]
    bar_chart("quality", labels, [r["rouge1_f"] for r in rows.values()],
              "ROUGE-1 F (%)", f"Held-out teacher labels ({len(held_out)} rows)")


if __name__ == "__main__":
    main()
