"""LoRA on vLLM's CPU backend at the speed of the base model.

vLLM's CPU LoRA ops (``vllm.lora.ops.torch_ops``) gather a full copy of the adapter's
weight matrices for every token (``lora_weights[token_indices]``) before an einsum: for a
batch of 32 abstracts that is ~10k copies per layer and module, and the tagger served an
adapter at ~0.4 papers/s against ~2.7 for the base model. A batch nearly always carries
one adapter, so here each adapter's tokens go through one plain matmul with its weights;
results are the same, row for row.

With LoRA on, vLLM runs the CPU model eagerly, so every small op of the LoRA path costs
its Python and dispatch overhead, ~11 per layer and step. When a step's tokens all use
one adapter slot (the tagger's case), ``add_lora_linear`` takes a shorter path: the slot
is found once per step instead of once per op, and modules whose weights in that slot
are zero (layers the adapter does not train: ``topictag distill`` trains the top half)
are skipped. Mixed batches take the grouped ops below.

Installed as a vLLM general plugin (entry point ``vllm.general_plugins`` in pyproject.toml),
so it runs in every vLLM process, the engine core included, before the model is built.
It changes nothing on GPUs, whose LoRA kernels are Triton.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

_OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


def _matmul_by_adapter(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype) -> torch.Tensor:
    """Row i of the result is inputs[i] @ weights[indices[i]].T, computed per adapter slot.
    Index -1 (no adapter) reads the last slot, as vLLM's own ops do; its weights are zero."""
    if weights.dim() == 4:  # [slots, 1, out, in]
        weights = weights.squeeze(1)
    inputs = inputs.to(dtype)
    slots = torch.unique(indices)
    if slots.numel() == 1:
        return inputs @ weights[int(slots)].to(dtype).T
    out = torch.empty(inputs.shape[0], weights.shape[1], dtype=dtype, device=inputs.device)
    for slot in slots.tolist():
        rows = indices == slot
        out[rows] = inputs[rows] @ weights[slot].to(dtype).T
    return out


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0) -> None:
    outputs = _matmul_by_adapter(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True) -> None:
    outputs = _matmul_by_adapter(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    # The same broadcasting and padding rules as vLLM's op: one output row may serve all,
    # and adapter and model may pad the output dimension differently.
    limit = 1 if outputs.shape[0] == 1 and output_tensor.shape[0] != 1 else output_tensor.shape[0]
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(
    inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int, slice_size: int, add_inputs: bool = True
) -> None:
    outputs = _matmul_by_adapter(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs


_MIXED = object()  # a step whose tokens use more than one adapter slot


def _nonzero_slots(weights: torch.Tensor) -> list[bool]:
    """Which slots of a stacked LoRA weight hold any non-zero value, cached on the tensor
    until it is next written (vLLM loads an adapter by copying into a slot in place,
    which bumps the tensor's version)."""
    cached = getattr(weights, "_topictag_nonzero", None)
    if cached is None or cached[0] != weights._version:
        cached = (weights._version, weights.flatten(1).any(dim=1).tolist())
        weights._topictag_nonzero = cached  # type: ignore[attr-defined]  # our own cache on the tensor
    return cached[1]


def _step_slot(wrapper):
    """The one adapter slot every token of this step uses (-1: none), else _MIXED."""
    slots = torch.unique(wrapper.token_lora_indices)
    return int(slots) if slots.numel() == 1 else _MIXED


def _install_single_slot_path(punica_cpu) -> None:
    wrapper_class = punica_cpu.PunicaWrapperCPU
    if getattr(wrapper_class, "_topictag_single_slot", False):
        return
    update_metadata = wrapper_class.update_metadata
    add_lora_linear = wrapper_class.add_lora_linear

    def update_metadata_and_slot(self, *args, **kwargs):
        update_metadata(self, *args, **kwargs)
        self._topictag_slot = _step_slot(self)

    def add_lora_linear_single_slot(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, **kwargs):
        slot = getattr(self, "_topictag_slot", _MIXED)
        if slot is _MIXED:
            return add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, **kwargs)
        if slot < 0:  # no adapter: the base model's output as it is
            return
        rows = y.view(-1, y.shape[-1])
        inputs = None
        offset = 0
        for a, b, size in zip(lora_a_stacked, lora_b_stacked, output_slices, strict=True):
            if _nonzero_slots(b)[slot]:
                if inputs is None:  # vLLM's ops shrink in float32 into a float32 buffer
                    inputs = x.view(-1, x.shape[-1]).float()
                a_slot = a[slot].reshape(a.shape[-2], a.shape[-1])
                b_slot = b[slot].reshape(b.shape[-2], b.shape[-1])
                shrunk = scale * (inputs @ a_slot.float().T)
                rows[:, offset : offset + size] += shrunk.to(rows.dtype) @ b_slot.to(rows.dtype).T
            offset += size

    wrapper_class.update_metadata = update_metadata_and_slot
    wrapper_class.add_lora_linear = add_lora_linear_single_slot
    wrapper_class.grouped_add_lora_linear = add_lora_linear  # the path mixed steps take
    wrapper_class._topictag_single_slot = True


def install() -> bool:
    """Point vLLM's CPU punica wrapper (and the sgmv ops, which call the bgmv ones by module
    global) at the grouped ops, and give it the single-slot path. False where this vLLM
    lacks them."""
    try:
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:
        return False
    for module in (lora_ops, punica_cpu):
        if not all(hasattr(module, name) for name in _OPS):
            return False
    wrapper_class = getattr(punica_cpu, "PunicaWrapperCPU", None)
    if wrapper_class is None or not all(hasattr(wrapper_class, n) for n in ("update_metadata", "add_lora_linear")):
        return False
    for module in (lora_ops, punica_cpu):
        for name in _OPS:
            setattr(module, name, globals()[name])
    _install_single_slot_path(punica_cpu)
    return True


def register() -> None:
    """vLLM general-plugin hook: runs in every vLLM process."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu() and not install():
        log.warning("this vLLM has no torch LoRA ops to replace; adapters are served by its own (slow on CPUs)")
