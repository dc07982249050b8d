"""Tagging speed: the tagger's engine (vLLM on the CPU, batched, with the adapter) vs the
original method (transformers `generate`, one paper at a time, greedy) and batched
transformers, on the same held-out abstracts, prompt and adapter. Warm-up (the first
call) is reported apart from the steady state.

    .venv/bin/python -m bench.tagging_speed --adapter DIR [--papers 96]

The vLLM run is repeated with vLLM's own CPU LoRA ops (topictag's vLLM plugin left out
through VLLM_PLUGINS), which gather a copy of the adapter weights per token.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.common import bar_chart, dev_split, write
from topictag.hardware import resolve_dtype
from topictag.schemas import Paper
from topictag.settings import get_settings
from topictag.student.engine import Adapter, create_engine


def measure(engine, papers: list[Paper], batch: int) -> dict:
    started = time.perf_counter()
    engine.predict(papers[:batch])  # warm-up: first compile/allocation, adapter load
    warmup = time.perf_counter() - started
    rest = papers[batch:]
    started = time.perf_counter()
    for i in range(0, len(rest), batch):
        engine.predict(rest[i : i + batch])
    seconds = time.perf_counter() - started
    return {"batch": batch, "warmup_s": round(warmup, 2), "papers": len(rest),
            "papers_per_s": round(len(rest) / seconds, 3), "s_per_paper": round(seconds / len(rest), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", type=Path, required=True, help="adapter folder from `topictag distill`")
    parser.add_argument("--papers", type=int, default=96)
    parser.add_argument("--one-at-a-time", type=int, default=24, help="papers for the slow original method")
    args = parser.parse_args()
    _, held_out = dev_split()
    papers = [Paper(arxiv_id=f"row-{i}", abstract=a) for i, a in enumerate(held_out["abstract"][: args.papers])]
    adapter = Adapter("bench", args.adapter, lora_id=1)
    settings = get_settings()
    runs = {}
    for name, engine_kind, dtype, batch, n in (
        ("HF generate, one at a time (original method)", "transformers", "float32", 1, args.one_at_a_time + 1),
        ("HF generate, batched", "transformers", "auto", 16, len(papers)),
        ("vLLM, batched (tagger)", "vllm", "auto", 32, len(papers)),
        ("vLLM, batched, vLLM's own CPU LoRA ops", "vllm", "auto", 32, len(papers)),
    ):
        if "own CPU LoRA" in name:  # read by each new engine process at start
            os.environ["VLLM_PLUGINS"] = "lora_filesystem_resolver,lora_hf_hub_resolver"
        student = settings.student.model_copy(update={"engine": engine_kind, "dtype": resolve_dtype(dtype)})
        engine = create_engine(settings.model_copy(update={"student": student}))
        engine.use_adapter(adapter)
        runs[name] = measure(engine, papers[:n], batch) | {"engine_start_s": round(engine.startup_s, 1), "dtype": resolve_dtype(dtype)}
        engine.close()
        print(name, runs[name], flush=True)
    base = runs["HF generate, one at a time (original method)"]["papers_per_s"]
    result = {"runs": runs, "speedup_vs_original": {k: round(v["papers_per_s"] / base, 1) for k, v in runs.items()}}
    write("tagging_speed", result)
    os.environ.pop("VLLM_PLUGINS", None)
    bar_chart("tagging_speed", ["HF 1-by-1", "HF batched", "vLLM batched", "vLLM, its LoRA ops"], [v["papers_per_s"] for v in runs.values()],
              "papers/s", "Tagging with the distilled student, 2 CPU cores")


if __name__ == "__main__":
    main()
