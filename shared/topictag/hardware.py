"""What the compute hardware does fast, so dtype defaults follow the machine.

bf16 is the fast choice on GPUs and on CPUs with AMX. Without bf16 instructions (AVX2-only
CPUs) torch and vLLM emulate it, and inference runs tens of times slower than in float32.
AVX512-BF16 alone is not enough to tell: it doubles the matrix throughput of some cores
(AMD Zen 4) and not others (Intel cores without AMX, where bf16 ran at half fp32's
speed), so on such a CPU a short timed probe decides.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
Dtype = Literal["bfloat16", "float16", "float32"]


def cpuinfo_field(name: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """A field of the first CPU in /proc/cpuinfo; None where it or the file is not there."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The feature flags of the first CPU, empty where /proc/cpuinfo is not there."""
    return frozenset((cpuinfo_field("flags", cpuinfo) or "").split())


@functools.cache
def native_bf16() -> bool:
    """True where bf16 matrix work is the fast choice: a CUDA GPU that supports it, or a CPU
    where it beats float32 (``cpu_bf16``)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_bf16()


@functools.cache
def cpu_bf16() -> bool:
    """True where this machine's CPU computes bf16 faster than float32: AMX, or AVX512-BF16
    where the probe measures bf16 matrix products at least ``BF16_MIN_GAIN`` times faster."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True
    if not flags & _BF16_CPU_FLAGS:
        return False
    gain = bf16_gain()
    log.info("bf16 matrix products run %.2fx as fast as float32 here: %s", gain,
             "bf16 by default" if gain >= BF16_MIN_GAIN else "float32 by default")
    return gain >= BF16_MIN_GAIN


BF16_MIN_GAIN = 1.2


def bf16_gain(rounds: int = 3) -> float:
    """float32 time over bf16 time for the student's typical matrix product (a 256-token
    block through a 576 x 1536 MLP weight), best of ``rounds`` alternating rounds on one
    thread: a busy neighbour slows both alike (two threads on a shared 2-core machine
    measured a gain of 1.3-1.5 where training and tagging ran 1.4-1.7x slower in bf16)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
        pairs = {dt: (torch.randn(256, 576, dtype=dt), torch.randn(576, 1536, dtype=dt)) for dt in best}
        for a, b in pairs.values():
            a @ b  # first call: kernel selection and allocation
        for _ in range(rounds):
            for dt, (a, b) in pairs.items():
                started = time.perf_counter()
                for _ in range(4):
                    a @ b
                best[dt] = min(best[dt], time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return best[torch.float32] / best[torch.bfloat16]


def resolve_dtype(dtype: Dtype | Literal["auto"]) -> Dtype:
    """An explicit dtype as given; "auto" becomes bfloat16 where it is the fast choice, else
    float32 (float16 on a GPU without bf16)."""
    if dtype != "auto":
        return dtype
    if native_bf16():
        return "bfloat16"
    import torch

    return "float16" if torch.cuda.is_available() else "float32"
