"""int8 quantisation of a model's Linear layers for CPU serving and evaluation.

Every Linear weight matrix becomes int8 with one float scale per output channel (per-channel symmetric:
``w[row] ~ scale[row] * q[row]``, ``q`` in -127..127), a quarter of float32's memory. Two ways to run it:

- ``weight`` (default): weight-only. The product is ``(x @ q^T) * scale`` in float, so only the weight
  rounding error remains: SmolLM2-135M's perplexity on ShareGPT text moves by about 1% (6.01 -> 6.06).
  Memory is what it saves: converting the int8 matrix to float on each call costs time (measured on this
  AVX-512 CPU, and PyTorch's fused ``_weight_int8pack_mm`` is ten times slower still; docs/performance.md).
- ``dynamic``: activations are also quantised to int8, **one scale per token** (per row), and the product
  runs on int8 x int8 -> int32 kernels: ``torch._int_mm`` for several rows, PyTorch's fbgemm/x86
  ``linear_dynamic`` for a single row (decoding: there its one scale per call is per token, and its call
  costs less). One scale per whole batch, as ``quantize_dynamic`` does, lets one token's outlier
  channels (LLM.int8(), Dettmers et al. 2022) flatten every other token: SmolLM2's perplexity went
  6.01 -> 7.44 that way; per token it is 6.17 with every layer, the output head included, in int8.

``benchmarks/bench_model.py`` measures speed and perplexity of both against float32.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from oidkit.models.transposed import TransposedLinear

Mode = Literal["weight", "dynamic"]


def per_channel_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)`` with ``weight[row] ~ scale[row] * q[row]``, ``q`` int8 in -127..127 (symmetric)."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    return torch.round(weight / scale[:, None]).to(torch.int8), scale


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights and a float scale per output channel; computes in the input's dtype."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight_int8, scale = per_channel_int8(linear.weight)
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the scale is per output channel, so it can be applied after the product: x @ (s q)^T = (x @ q^T) s
        out = F.linear(x, self.weight_int8.to(x.dtype)) * self.scale.to(x.dtype)
        return out if self.bias is None else out + self.bias


class DynamicInt8Linear(nn.Module):
    """A Linear layer computing in int8: per-channel int8 weights, activations quantised per token."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight_int8, scale = per_channel_int8(linear.weight)
        self.register_buffer("weight_int8_t", weight_int8.t().contiguous())  # (in, out), as _int_mm takes it
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():  # PyTorch marks quantized tensors deprecated; the kernel is current
            warnings.simplefilter("ignore")
            weight = torch.quantize_per_channel(weight_int8.float() * scale[:, None], scale.double(),
                                                torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8)
        self.packed = torch.ops.quantized.linear_prepack(weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        if rows.shape[0] == 1:  # decoding one token: fbgemm's single call, its one activation scale is per token
            out = torch.ops.quantized.linear_dynamic(rows, self.packed, False)
        else:
            row_scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            rows_int8 = torch.round(rows / row_scale).to(torch.int8)
            # x @ w^T = (sx qx) @ (q^T sw) = (qx @ q^T) * sx * sw, the product exact in int32
            out = torch._int_mm(rows_int8, self.weight_int8_t).float() * row_scale * self.scale
            if self.bias is not None:
                out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


def quantize_int8(model: nn.Module, mode: Mode = "weight") -> nn.Module:
    """An int8 copy of ``model`` (float32, CPU, eval mode); the original is left as it was.

    Works on ``transformers`` models and on ``oidkit.models.llama.LlamaModel`` alike; embeddings and norms
    stay float.
    """
    model = copy.deepcopy(model).float().cpu().eval()
    if mode not in ("weight", "dynamic"):
        raise ValueError(f"unknown int8 mode {mode!r}; choose weight or dynamic")
    layer = Int8Linear if mode == "weight" else DynamicInt8Linear
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                setattr(parent, name, layer(child))
    return model


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes held by the Linear weights (float, transposed float or our int8), to show the memory saved."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
        elif isinstance(module, TransposedLinear):
            total += module.weight_t.numel() * module.weight_t.element_size()
        elif isinstance(module, Int8Linear):
            total += module.weight_int8.numel() + module.scale.numel() * module.scale.element_size()
        elif isinstance(module, DynamicInt8Linear):  # counted once: the packed copy for fbgemm doubles it
            total += module.weight_int8_t.numel() + module.scale.numel() * module.scale.element_size()
    return total
