"""The grouped CPU LoRA ops give vLLM's own results, row for row, and vLLM loads them."""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points

import pytest
import torch

from topictag.student import vllm_cpu_lora

lora_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")


@pytest.fixture(scope="module")
def reference():
    """A fresh copy of vLLM's ops module: the plugin may already have patched the loaded one."""
    spec = importlib.util.spec_from_file_location("vllm_lora_ops_reference", lora_ops.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLOTS, OUT, IN, RANK, TOKENS = 3, 40, 24, 8, 37
CASES = {
    "one adapter": torch.zeros(TOKENS, dtype=torch.long),
    "another slot": torch.full((TOKENS,), 2, dtype=torch.long),
    "mixed, with no-adapter tokens": torch.tensor([i % 4 - 1 for i in range(TOKENS)]),
}


def _weights(out: int, inp: int, four_dims: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(out * 1000 + inp)
    w = torch.randn(SLOTS, out, inp, generator=g, dtype=torch.bfloat16)
    return w.unsqueeze(1) if four_dims else w


@pytest.mark.parametrize("indices", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("four_dims", [False, True])
def test_shrink_matches_vllm(reference, indices, four_dims):
    x = torch.randn(TOKENS, IN, dtype=torch.bfloat16)
    a = _weights(RANK, IN, four_dims)
    ours, theirs = torch.zeros(TOKENS, RANK), torch.zeros(TOKENS, RANK)  # fp32 buffer, as vLLM allocates
    vllm_cpu_lora.bgmv_shrink(x, a, ours, indices, 0.5)
    reference.bgmv_shrink(x, a, theirs, indices, 0.5)
    torch.testing.assert_close(ours, theirs)
    assert ours.abs().sum() > 0


@pytest.mark.parametrize("indices", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("add_inputs", [True, False])
def test_expand_and_slice_match_vllm(reference, indices, add_inputs):
    buffer = torch.randn(TOKENS, RANK)
    b = _weights(OUT, RANK, four_dims=True)
    start = torch.randn(TOKENS, OUT + 16, dtype=torch.bfloat16)
    ours, theirs = start.clone(), start.clone()
    vllm_cpu_lora.bgmv_expand(buffer, b, ours, indices, add_inputs)
    reference.bgmv_expand(buffer, b, theirs, indices, add_inputs)
    torch.testing.assert_close(ours, theirs)
    ours, theirs = start.clone(), start.clone()
    vllm_cpu_lora.bgmv_expand_slice(buffer, b, ours, indices, 8, OUT, add_inputs)
    reference.bgmv_expand_slice(buffer, b, theirs, indices, 8, OUT, add_inputs)
    torch.testing.assert_close(ours, theirs)
    assert not torch.equal(ours, start)


def test_one_row_broadcasts_like_vllm(reference):
    b = _weights(OUT, RANK, four_dims=False)
    buffer, indices = torch.randn(1, RANK), torch.zeros(1, dtype=torch.long)
    ours, theirs = torch.zeros(5, OUT), torch.zeros(5, OUT)
    vllm_cpu_lora.bgmv_expand(buffer, b, ours, indices, True)
    reference.bgmv_expand(buffer, b, theirs, indices, True)
    torch.testing.assert_close(ours, theirs)


def test_prefill_ops_use_the_grouped_ops_once_installed(reference):
    """vLLM's sgmv (prefill) ops expand per-sequence indices and call bgmv by module global."""
    assert vllm_cpu_lora.install()
    from vllm.lora.punica_wrapper import punica_cpu

    assert punica_cpu.bgmv_shrink is vllm_cpu_lora.bgmv_shrink
    assert lora_ops.bgmv_expand_slice is vllm_cpu_lora.bgmv_expand_slice
    x = torch.randn(10, IN, dtype=torch.bfloat16)
    a = _weights(RANK, IN, four_dims=True)
    seq_lens, slots = torch.tensor([3, 7]), torch.tensor([1, 0])
    ours, theirs = torch.zeros(10, RANK), torch.zeros(10, RANK)
    lora_ops.sgmv_shrink(x, a, ours, None, seq_lens, slots, 2, 7, 10, 2.0)
    reference.sgmv_shrink(x, a, theirs, None, seq_lens, slots, 2, 7, 10, 2.0)
    torch.testing.assert_close(ours, theirs)


def test_vllm_finds_the_plugin():
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins.get("topictag_cpu_lora") == "topictag.student.vllm_cpu_lora:register"


SLICES = (40, 16, 16)  # a merged projection, as q/k/v: one LoRA pair per slice


def _stacked(seed: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """vLLM's stacked LoRA weights of one merged layer: [slots, 1, rank, in] and [slots, 1, out, rank]."""
    g = torch.Generator().manual_seed(seed)
    a = tuple(torch.randn(SLOTS, 1, RANK, IN, generator=g, dtype=torch.bfloat16) for _ in SLICES)
    b = tuple(torch.randn(SLOTS, 1, size, RANK, generator=g, dtype=torch.bfloat16) for size in SLICES)
    return a, b


def _wrapper(index_mapping: tuple[int, ...], lora_index_to_id: list):
    """vLLM's CPU punica wrapper after the model runner gave it a step's adapter mapping."""
    from vllm.lora.layers import LoRAMapping
    from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

    assert vllm_cpu_lora.install()
    wrapper = PunicaWrapperCPU(64, 4, "cpu")
    wrapper.update_metadata(LoRAMapping(index_mapping, index_mapping, is_prefill=False), lora_index_to_id, SLOTS, 1000)
    return wrapper


def _both_paths(wrapper, a, b, scale=2.0):
    x = torch.randn(wrapper.token_lora_indices.numel(), IN, dtype=torch.bfloat16)
    base = torch.randn(x.shape[0], sum(SLICES), dtype=torch.bfloat16)
    ours, grouped = base.clone(), base.clone()
    wrapper.add_lora_linear(ours, x, a, b, scale, SLICES)
    wrapper.grouped_add_lora_linear(grouped, x, a, b, scale, SLICES)
    return base, ours, grouped


def test_a_step_on_one_adapter_takes_the_single_slot_path_with_the_same_results():
    wrapper = _wrapper((7,) * TOKENS, [None, 7, None])
    assert wrapper._topictag_slot == 1
    a, b = _stacked(1)
    base, ours, grouped = _both_paths(wrapper, a, b)
    torch.testing.assert_close(ours, grouped)
    assert not torch.equal(ours, base)


def test_modules_the_adapter_did_not_train_are_skipped_until_a_load_writes_them():
    wrapper = _wrapper((7,) * TOKENS, [None, 7, None])
    a, b = _stacked(2)
    b[1][1].zero_()  # the slot's k slice: no weights there, as in layers the adapter leaves alone
    base, ours, grouped = _both_paths(wrapper, a, b)
    torch.testing.assert_close(ours, grouped)
    torch.testing.assert_close(ours[:, 40:56], base[:, 40:56], rtol=0, atol=0)
    assert not torch.equal(ours[:, :40], base[:, :40])
    # Loading an adapter copies into the slot in place; the next step must see the new weights.
    b[1][1, 0].copy_(torch.ones(16, RANK, dtype=torch.bfloat16))
    base, ours, grouped = _both_paths(wrapper, a, b)
    torch.testing.assert_close(ours, grouped)
    assert not torch.equal(ours[:, 40:56], base[:, 40:56])


def test_a_step_without_adapters_leaves_the_base_output():
    wrapper = _wrapper((0,) * TOKENS, [None, 7, None])
    assert wrapper._topictag_slot == -1
    a, b = _stacked(3)
    base, ours, _ = _both_paths(wrapper, a, b)
    torch.testing.assert_close(ours, base, rtol=0, atol=0)


def test_a_step_mixing_adapters_takes_the_grouped_path():
    mapping = tuple((7, 9)[i % 2] for i in range(TOKENS))
    wrapper = _wrapper(mapping, [None, 7, 9])
    assert wrapper._topictag_slot is vllm_cpu_lora._MIXED
    a, b = _stacked(4)
    base, ours, grouped = _both_paths(wrapper, a, b)
    torch.testing.assert_close(ours, grouped, rtol=0, atol=0)
    assert not torch.equal(ours, base)
