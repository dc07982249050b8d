"""Quality on the held-out dev rows: the base student with the tagger's prompt, a student
distilled with `topictag distill`'s defaults (trained on the other rows only), and the
original 8B student's recorded predictions for the same rows.

    .venv/bin/python bench/quality.py [--adapter DIR]   # trains one into bench/results/adapter if omitted
"""

from __future__ import annotations

import argparse
import subprocess
import sys
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
    for name, adapter in (("base SmolLM2, the tagger's prompt", None),
                          ("distilled student (topictag distill)", Adapter("bench", adapter_dir, lora_id=1))):
        engine.use_adapter(adapter)
        topics = [p.topic for i in range(0, len(papers), 64) for p in engine.predict(papers[i : i + 64])]
        rows[name] = score(topics, refs)
    engine.close()
    rows["original 8B student (recorded predictions)"] = score(held_out["original_student_prediction"].tolist(), refs)
    result = {"held_out_rows": len(held_out), "adapter": str(adapter_dir), "table": rows}
    write("quality", result)
    table = pd.DataFrame(rows).T[["bleu3", "rouge1_f", "original_bleu", "embedding_similarity"]]
    print(table.to_markdown())
    bar_chart("quality", ["base", "distilled", "original 8B"], [r["rouge1_f"] for r in rows.values()],
              "ROUGE-1 F (%)", f"Held-out teacher labels ({len(held_out)} rows)")


if __name__ == "__main__":
    main()
