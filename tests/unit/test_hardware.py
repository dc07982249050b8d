"""The dtype defaults follow the machine: bf16 only where it is computed natively."""

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
