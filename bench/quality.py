"""Quality on the held-out dev rows: the base student with the tagger's prompt, a student
distilled with `topictag distill`'s defaults (trained on the other rows only; by default the
adapter that ships in data/adapter), and the original 8B student's recorded predictions for
the same rows. Each row also reports readability (`topictag.evaluation.readability`): how
often a topic is a copy of one of the prompt's examples, a sentence, cut off mid-phrase.
Title copies need titles, which the teacher rows lack: they are measured on the newest
--titled papers of data/arxiv_ml_stream.parquet (never labelled, never trained on), for
each model with the title in the prompt and without.

    .venv/bin/python -m bench.quality [--adapter DIR] [--titled 200] [--mbr 4 8] [--cuts 256]

--mbr N adds a row for the
distilled student with minimum-Bayes-risk decoding over the greedy answer and N samples
(TOPICTAG_STUDENT_MBR_SAMPLES), beside greedy, on the same engine in the same run. --cuts N
adds a row for the distilled student served abstracts cut at N tokens
(TOPICTAG_STUDENT_MAX_ABSTRACT_TOKENS) instead of the tagger's setting.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from bench.common import bar_chart, dev_split, write
from topictag.evaluation import readability, score
from topictag.schemas import Paper
from topictag.settings import get_settings
from topictag.student.engine import Adapter
from topictag.student.factory import create_engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", type=Path, help="adapter folder (default: the shipped one)")
    parser.add_argument("--titled", type=int, default=200, help="stream papers with titles for title copies")
    parser.add_argument("--mbr", type=int, nargs="*", default=[], help="MBR sample counts to score too")
    parser.add_argument("--cuts", type=int, nargs="*", default=[], help="abstract cuts (tokens) to serve at too")
    args = parser.parse_args()
    settings = get_settings()
    adapter_dir = args.adapter or settings.shipped_adapter_dir
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
        rows[name] = score(topics, refs) | readability(topics) | {
            "papers_per_s": round(len(papers) / (time.monotonic() - started), 2)}
    titled = {}
    stream = pd.read_parquet(settings.paths.bundle_dir / "arxiv_ml_stream.parquet").tail(args.titled)
    stream_papers = [Paper(arxiv_id=r["arxiv_id"], title=r["title"], abstract=r["abstract"])
                     for r in stream.to_dict(orient="records")]
    for name, adapter in (("base SmolLM2", None), ("distilled student", distilled)):
        engine.use_adapter(adapter)
        for with_title in (True, False):
            engine.settings = settings.model_copy(update={"student": settings.student.model_copy(
                update={"prompt_title": with_title})})
            topics = [p.topic for i in range(0, len(stream_papers), 64) for p in engine.predict(stream_papers[i : i + 64])]
            key = f"{name}, title {'in' if with_title else 'not in'} the prompt"
            titled[key] = readability(topics, stream["title"].tolist()) | {"examples": topics[:8]}
    engine.close()
    original = held_out["original_student_prediction"].tolist()
    rows["original 8B student (recorded predictions)"] = score(original, refs) | readability(original)
    result = {"held_out_rows": len(held_out), "adapter": str(adapter_dir), "serving_cut": cut, "table": rows,
              "titled_papers": len(stream_papers), "titled": titled}
    write("quality", result)
    table = pd.DataFrame(rows).T[["bleu3", "rouge1_f", "original_bleu", "embedding_similarity",
                                  "example_copy", "sentence", "cut_off"]]
    print(table.to_markdown())
    print(pd.DataFrame(titled).T.drop(columns="examples").to_markdown())
    labels = ["base", "distilled", *(f"MBR {n}" for n in args.mbr), *(f"cut {c}" for c in args.cuts), "original 8B"]
    bar_chart("quality", labels, [r["rouge1_f"] for r in rows.values()],
              "ROUGE-1 F (%)", f"Held-out teacher labels ({len(held_out)} rows)")


if __name__ == "__main__":
    main()
