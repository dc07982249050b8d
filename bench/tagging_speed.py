"""Tagging speed: the tagger's engine (vLLM on the CPU, batched, with the adapter) vs the
original method (transformers `generate`, one paper at a time, greedy) and batched
transformers, on the same abstracts, prompt and adapter. Warm-up (the first call) is
reported apart from the steady state.

    .venv/bin/python -m bench.tagging_speed --adapter DIR [--rounds 5] [--name NAME]

The three engines live side by side and take turns: each round times every engine on
papers none of them has seen, and the speed-ups are the medians of the rounds' ratios, so a
slow spell of a shared machine weighs on all engines alike. Then vLLM runs once more with
its own CPU LoRA ops (topictag's vLLM plugin left out through VLLM_PLUGINS), which gather
a copy of the adapter weights per token (`--skip-vllm-lora-ops` leaves that out).

It also reports the prefill bound: the most papers/s this machine's matrix products allow
for the prompts' linear-layer work alone (the student's shapes, timed as plain products of
2,048 tokens in the tagger's dtype), before attention, norms, the adapter and decoding.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench.common import bar_chart, dev_split, write
from topictag.hardware import resolve_dtype
from topictag.schemas import Paper
from topictag.settings import get_settings
from topictag.student.engine import Adapter
from topictag.student.factory import create_engine
from topictag.student.model_files import student_model_path
from topictag.student.prompt import build_messages


def timed(engine, papers: list[Paper], batch: int) -> float:
    """Seconds to tag ``papers`` in calls of ``batch``."""
    started = time.perf_counter()
    for i in range(0, len(papers), batch):
        engine.predict(papers[i : i + batch])
    return time.perf_counter() - started


def prompt_tokens(engine, papers: list[Paper]) -> float:
    """Mean length in tokens of the prompt the engine builds for these papers with an adapter."""
    return statistics.fmean(
        len(engine.tokenizer.apply_chat_template(
            build_messages(p.abstract, few_shot=False, truncate=engine.truncate_abstract),  # as the tagger asks
            add_generation_prompt=True, tokenize=True, return_dict=False))
        for p in papers
    )


def prefill_bound(settings, dtype: str, tokens_per_prompt: float, rows: int = 2048) -> dict:
    """Papers/s if prefill were nothing but the student's linear layers at the speed of plain
    matrix products of their shapes here (q/k/v and gate/up merged, as vLLM runs them)."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(student_model_path(settings))
    hidden, inner = config.hidden_size, config.intermediate_size
    head = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q, kv = config.num_attention_heads * head, config.num_key_value_heads * head
    seconds = flops = 0.0
    for k, n in ((hidden, q + 2 * kv), (q, hidden), (hidden, 2 * inner), (inner, hidden)):
        a, b = torch.randn(rows, k, dtype=getattr(torch, dtype)), torch.randn(k, n, dtype=getattr(torch, dtype))
        for _ in range(3):
            a @ b
        started = time.perf_counter()
        for _ in range(10):
            a @ b
        seconds += (time.perf_counter() - started) / 10 / rows
        flops += 2 * k * n
    seconds *= config.num_hidden_layers
    flops *= config.num_hidden_layers
    return {"dtype": dtype, "prompt_tokens": round(tokens_per_prompt, 1),
            "gflop_per_paper": round(flops * tokens_per_prompt / 1e9, 1), "matmul_gflops": round(flops / seconds / 1e9),
            "papers_per_s": round(1 / (seconds * tokens_per_prompt), 2)}


# name -> (engine, dtype, batch, papers per round)
ENGINES = {
    "HF generate, one at a time (original method)": ("transformers", "float32", 1, 8),
    "HF generate, batched": ("transformers", "auto", 16, 32),
    "vLLM, batched (tagger)": ("vllm", "auto", 32, 64),
}
ORIGINAL, TAGGER = "HF generate, one at a time (original method)", "vLLM, batched (tagger)"


def start_engine(settings, kind: str, dtype: str, adapter: Adapter):
    student = settings.student.model_copy(update={"engine": kind, "dtype": resolve_dtype(dtype)})
    engine = create_engine(settings.model_copy(update={"student": student}))
    engine.use_adapter(adapter)
    return engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", type=Path, required=True, help="adapter folder from `topictag distill`")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-vllm-lora-ops", action="store_true", help="leave out the run with vLLM's own LoRA ops")
    parser.add_argument("--name", default="tagging_speed", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()
    train, held_out = dev_split()
    # Every engine gets papers it has not seen (no prefix-cache hits): all dev abstracts, held-out first.
    abstracts = list(held_out["abstract"]) + list(train["abstract"])
    needed = sum(b + args.rounds * n for _, _, b, n in ENGINES.values()) + 64 + (0 if args.skip_vllm_lora_ops else 96)
    if needed > len(abstracts):
        parser.error(f"{args.rounds} rounds need {needed} abstracts; the dev labels have {len(abstracts)}")
    pool = iter([Paper(arxiv_id=f"row-{i}", abstract=a) for i, a in enumerate(abstracts)])

    def take(n: int) -> list[Paper]:
        return [next(pool) for _ in range(n)]

    adapter = Adapter("bench", args.adapter, lora_id=1)
    settings = get_settings()
    engines, runs = {}, {}
    for name, (kind, dtype, batch, _) in ENGINES.items():
        engines[name] = start_engine(settings, kind, dtype, adapter)
        runs[name] = {"dtype": resolve_dtype(dtype), "batch": batch, "engine_start_s": round(engines[name].startup_s, 1),
                      "warmup_s": round(timed(engines[name], take(batch), batch), 2), "rounds": []}
    for round_ in range(args.rounds):
        for name, (_, _, batch, n) in ENGINES.items():
            runs[name]["rounds"].append(round(n / timed(engines[name], take(n), batch), 3))
        print(f"round {round_ + 1}:", {name: run["rounds"][-1] for name, run in runs.items()}, flush=True)
    bound = prefill_bound(settings, runs[TAGGER]["dtype"], prompt_tokens(engines[TAGGER], take(64)))
    for engine in engines.values():
        engine.close()
    speedups = {}
    for name, run in runs.items():
        run["papers_per_s"] = statistics.median(run["rounds"])
        run["papers"] = ENGINES[name][3] * args.rounds
        speedups[name] = round(statistics.median(r / o for r, o in zip(run["rounds"], runs[ORIGINAL]["rounds"])), 2)
    if not args.skip_vllm_lora_ops:
        name = "vLLM, batched, vLLM's own CPU LoRA ops"
        os.environ["VLLM_PLUGINS"] = "lora_filesystem_resolver,lora_hf_hub_resolver"  # read by the new engine process
        engine = start_engine(settings, "vllm", "auto", adapter)
        os.environ.pop("VLLM_PLUGINS")
        warmup = timed(engine, take(32), 32)
        speed = 64 / timed(engine, take(64), 32)
        engine.close()
        runs[name] = {"dtype": runs[TAGGER]["dtype"], "batch": 32, "engine_start_s": round(engine.startup_s, 1),
                      "warmup_s": round(warmup, 2), "papers": 64, "papers_per_s": round(speed, 3)}
        speedups[name] = round(speed / runs[ORIGINAL]["papers_per_s"], 2)  # one run, not side by side
    result = {"runs": runs, "speedup_vs_original": speedups,
              "prefill_bound": bound | {"x_original": round(bound["papers_per_s"] / runs[ORIGINAL]["papers_per_s"], 1)}}
    write(args.name, result)
    labels = {ORIGINAL: "HF 1-by-1", "HF generate, batched": "HF batched", TAGGER: "vLLM (tagger)"}
    bar_chart(args.name, [labels.get(k, "vLLM, its LoRA ops") for k in runs] + ["prefill bound"],
              [v["papers_per_s"] for v in runs.values()] + [bound["papers_per_s"]],
              "papers/s", "Tagging with the distilled student, 2 CPU cores")


if __name__ == "__main__":
    main()
