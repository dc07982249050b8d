"""GPU smoke check: the student's whole GPU path on one NVIDIA GPU, offline (the bundled
SmolLM2 weights, the bundled papers and teacher labels; no hub download).

    .venv/bin/python -m bench.gpu_smoke [--papers 1000] [--steps 300]

1. loads the student on vLLM (CUDA) beside room for training (``--gpu-memory-utilization``);
2. tags ``--papers`` papers of data/arxiv_ml_stream.parquet with the base model;
3. trains a LoRA adapter on data/teacher_labels.parquet for ``--steps`` steps with the
   trainer's settings (``TOPICTAG_DISTILL_*``; bf16 where the GPU has it);
4. hot-swaps it into the running engine and tags the same papers with it;
5. writes papers/s (base and adapter), training samples/s, the engine's start-up time and
   the peak GPU memory in use (``nvidia-smi``, every process on the GPU) to
   bench/results/gpu_smoke.json.

``--device cpu`` runs the same steps on the CPU (peak resident memory instead of GPU
memory), which is how the test suite keeps this script working without a GPU.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from bench.common import write
from topictag.distill.dataset import split_labels
from topictag.files import read_labels
from topictag.schemas import Paper
from topictag.settings import Settings, get_settings
from topictag.student.engine import Adapter, StudentEngine, lora_id_for


class PeakMemory:
    """Samples memory in use every ``every_s`` in a thread: all processes on GPU 0 (vLLM's
    engine runs in its own process) or, on the CPU, this process and its children."""

    def __init__(self, device: str, every_s: float = 0.5):
        self.device, self.every_s = device, every_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        if self.device == "cuda":
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, check=True).stdout
            return float(out.split()[0])
        import psutil

        me = psutil.Process()
        return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mib = max(self.peak_mib, self._sample())

    def __enter__(self) -> PeakMemory:
        self.peak_mib = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._sample())


def smoke_settings(device: str, steps: int, gpu_memory_utilization: float) -> Settings:
    settings = get_settings()
    student = settings.student.model_copy(update={
        "engine": "vllm", "gpu_memory_utilization": gpu_memory_utilization,
        "max_lora_rank": max(settings.student.max_lora_rank, settings.distill.lora_rank),
    })
    distill = settings.distill.model_copy(update={"max_steps": steps})
    return settings.model_copy(update={"student": student, "distill": distill})


def tag(engine: StudentEngine, papers: list[Paper], batch: int) -> tuple[float, list[str], list[str]]:
    """papers/s, the topics and the adapter versions the engine served them with, tagging
    ``papers`` in calls of ``batch``."""
    topics, versions = [], set()
    started = time.perf_counter()
    for i in range(0, len(papers), batch):
        topics += [p.topic for p in engine.predict(papers[i : i + batch])]
        versions.add(engine.adapter_version)
    return len(papers) / (time.perf_counter() - started), topics, sorted(versions)


def run(settings: Settings, device: str, n_papers: int, batch: int, out_dir: Path) -> dict:
    import torch

    from topictag.distill.train import distill
    from topictag.student.factory import create_engine

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: install the CUDA build of torch and vllm (docs/gpu.md), or pass --device cpu")
    stream = pd.read_parquet(settings.paths.bundle_dir / "arxiv_ml_stream.parquet").head(n_papers)
    papers = [Paper(arxiv_id=str(r.arxiv_id), title=str(r.title), abstract=str(r.abstract)) for r in stream.itertuples()]
    train, _ = split_labels(read_labels(settings.teacher_labels_file), settings.trainer.eval_fraction)
    with PeakMemory(device) as memory:
        engine = create_engine(settings)
        try:
            base_rate, _, base_versions = tag(engine, papers, batch)
            result = distill(settings, train, out_dir / "adapter")
            # The swap the taggers make on a promotion: the same engine, no restart; the
            # adapter's first batch includes loading it.
            engine.use_adapter(Adapter("smoke", result.path, lora_id=lora_id_for(result.sha256)))
            adapter_rate, topics, adapter_versions = tag(engine, papers, batch)
        finally:
            engine.close()
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "model": settings.student.model_name,
        "papers": len(papers),
        "engine_start_s": round(engine.startup_s, 1),
        "papers_per_s_base": round(base_rate, 2),
        "papers_per_s_adapter": round(adapter_rate, 2),
        "served_by": {"base": base_versions, "after_swap": adapter_versions},
        "train_steps": settings.distill.max_steps,
        "train_samples_per_s": round(result.samples_per_s, 2),
        "train_seconds": round(result.train_seconds, 1),
        "lora_rank": settings.distill.lora_rank,
        "peak_memory_mib": round(memory.peak_mib),
        "peak_memory_of": "GPU 0, every process (nvidia-smi)" if device == "cuda" else "this process and its children (RSS)",
        "sample_topics": topics[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of the training")
    parser.add_argument("--batch", type=int, default=256, help="papers per engine call")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.4,
                        help="vLLM's share of the GPU; the rest is the training's")
    parser.add_argument("--name", default="gpu_smoke", help="results file name under bench/results/")
    args = parser.parse_args()
    settings = smoke_settings(args.device, args.steps, args.gpu_memory_utilization)
    out_dir = Path(tempfile.mkdtemp(prefix="topictag-gpu-smoke-"))
    try:
        write(args.name, run(settings, args.device, args.papers, args.batch, out_dir))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
