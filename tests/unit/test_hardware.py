"""The dtype defaults follow the machine: bf16 only where it is the fast choice."""

import pytest

from topictag import hardware


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16\nbugs\t: none\n")
    assert hardware.cpu_flags(info) == {"fpu", "sse", "avx2", "avx512f", "amx_bf16"}
    assert hardware.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert hardware.resolve_dtype("auto") == expected


def test_explicit_dtype_is_kept(monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    assert hardware.resolve_dtype("bfloat16") == "bfloat16"
    assert hardware.resolve_dtype("float16") == "float16"


@pytest.mark.parametrize(
    ("flags", "gain", "expected"),
    [
        ({"avx2", "amx_bf16", "avx512_bf16"}, None, True),  # AMX: no probe needed
        ({"avx2", "avx512f"}, None, False),  # no bf16 instructions: emulated, never
        ({"avx512f", "avx512_bf16"}, 1.9, True),  # AVX512-BF16 doubling throughput (AMD Zen 4)
        ({"avx512f", "avx512_bf16"}, 0.6, False),  # AVX512-BF16 at half fp32's speed (Intel without AMX)
    ],
)
def test_cpu_bf16_from_flags_and_probe(monkeypatch, flags, gain, expected):
    def probe():
        assert gain is not None, "probed where the flags alone decide"
        return gain

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(hardware, "bf16_gain", probe)
    assert hardware.cpu_bf16.__wrapped__() is expected


def test_probe_is_fp32_time_over_bf16_time_best_of_rounds(monkeypatch):
    """Round by round, float32 then bfloat16: fp32 takes 3 s then 2 s, bf16 1 s then 4 s,
    so the best times are 2 s and 1 s and bf16 is twice as fast."""
    durations = iter([3.0, 1.0, 2.0, 4.0])
    clock = {"now": 0.0, "started": False}

    def perf_counter():
        if clock["started"]:
            clock["now"] += next(durations)
        clock["started"] = not clock["started"]
        return clock["now"]

    monkeypatch.setattr(hardware.time, "perf_counter", perf_counter)
    assert hardware.bf16_gain(rounds=2) == pytest.approx(2.0)


def test_probe_runs_on_this_machine_and_leaves_threads_as_they_were():
    import math

    import torch

    threads = torch.get_num_threads()
    gain = hardware.bf16_gain(rounds=1)
    # Emulated bf16 (AVX2 only) measured 100x slower than fp32 here, AMX 5x faster: any
    # finite positive ratio is a measurement; zero, inf or nan would be a broken timer.
    assert gain > 0 and math.isfinite(gain)
    assert torch.get_num_threads() == threads
