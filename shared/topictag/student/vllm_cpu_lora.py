"""LoRA on vLLM's CPU backend at the speed of the base model.

vLLM's CPU LoRA ops (``vllm.lora.ops.torch_ops``) gather a full copy of the adapter's
weight matrices for every token (``lora_weights[token_indices]``) before an einsum: for a
batch of 32 abstracts that is ~10k copies per layer and module, and the tagger served an
adapter at ~0.4 papers/s against ~2.7 for the base model. A batch nearly always carries
one adapter, so here each adapter's tokens go through one plain matmul with its weights;
results are the same, row for row.

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


def install() -> bool:
    """Point vLLM's CPU punica wrapper (and the sgmv ops, which call the bgmv ones by module
    global) at the grouped ops. False where this vLLM lacks them."""
    try:
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:
        return False
    for module in (lora_ops, punica_cpu):
        if not all(hasattr(module, name) for name in _OPS):
            return False
    for module in (lora_ops, punica_cpu):
        for name in _OPS:
            setattr(module, name, globals()[name])
    return True


def register() -> None:
    """vLLM general-plugin hook: runs in every vLLM process."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu() and not install():
        log.warning("this vLLM has no torch LoRA ops to replace; adapters are served by its own (slow on CPUs)")
