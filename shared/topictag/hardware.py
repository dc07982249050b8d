"""What the compute hardware does natively, so dtype defaults follow the machine.

bf16 is the fast choice on GPUs and on CPUs with AMX or AVX512-BF16. Elsewhere (AVX2-only
CPUs) torch and vLLM emulate it, and inference runs tens of times slower than in float32.
"""

from __future__ import annotations

import functools
from pathlib import Path

_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


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
    """True where bf16 matrix work runs natively: a CUDA GPU that supports it, or a CPU with
    AMX / AVX512-BF16."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_bf16()


@functools.cache
def cpu_bf16() -> bool:
    """True where this machine's CPU computes bf16 natively (AMX / AVX512-BF16)."""
    return bool(cpu_flags() & _BF16_CPU_FLAGS)


def resolve_dtype(dtype: str) -> str:
    """An explicit dtype as given; "auto" becomes bfloat16 where it is native, else float32
    (float16 on a GPU without bf16)."""
    if dtype != "auto":
        return dtype
    if native_bf16():
        return "bfloat16"
    import torch

    return "float16" if torch.cuda.is_available() else "float32"
