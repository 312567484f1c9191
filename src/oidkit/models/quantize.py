"""int8 quantisation of a model's Linear layers for CPU serving and evaluation.

Every Linear weight matrix becomes int8 with one float scale per output channel (per-channel symmetric:
``w[row] ~ scale[row] * q[row]``, ``q`` in -127..127), a quarter of float32's memory. Two ways to run it:

- ``weight`` (default): weight-only. The product is ``(x @ q^T) * scale`` in float, so only the weight
  rounding error remains: SmolLM2-135M's perplexity on ShareGPT text moves by about 1% (6.01 -> 6.06).
  Memory is what it saves; converting the int8 matrix to float on each call costs time.
- ``dynamic``: activations are also quantised, per batch, and the product runs on int8 x int8 -> int32
  kernels (PyTorch's ``quantize_dynamic``): faster on long inputs, but a Transformer's activations have
  outlier channels (LLM.int8(), Dettmers et al. 2022) that one scale per tensor flattens. The inputs of
  the feed-forward down projection and of the output head are the worst: those layers stay float
  (quantising them too took SmolLM2's perplexity on GSM8K text from 6.0 to 14.8; without them, 7.1).

``benchmarks/bench_model.py`` measures speed and perplexity of both against float32.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Mode = Literal["weight", "dynamic"]
DYNAMIC_KEEP_FLOAT = ("down_proj", "feed_forward.w2", "lm_head", "output")  # names in HF and in our llama.py


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights and a float scale per output channel; computes in the input's dtype."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the scale is per output channel, so it can be applied after the product: x @ (s q)^T = (x @ q^T) s
        out = F.linear(x, self.weight_int8.to(x.dtype)) * self.scale.to(x.dtype)
        return out if self.bias is None else out + self.bias


def quantize_int8(model: nn.Module, mode: Mode = "weight") -> nn.Module:
    """An int8 copy of ``model`` (float32, CPU, eval mode); the original is left as it was.

    Works on ``transformers`` models and on ``oidkit.models.llama.LlamaModel`` alike; embeddings and norms
    stay float.
    """
    model = copy.deepcopy(model).float().cpu().eval()
    if mode == "dynamic":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        chosen = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
                  if isinstance(module, nn.Linear) and not name.endswith(DYNAMIC_KEEP_FLOAT)}
        with warnings.catch_warnings():  # PyTorch points to torchao for this API, once per layer
            warnings.simplefilter("ignore")
            return quantize_dynamic(model, chosen, dtype=torch.qint8, inplace=True)
    if mode != "weight":
        raise ValueError(f"unknown int8 mode {mode!r}; choose weight or dynamic")
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child))
    return model


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes held by the Linear weights (float, our int8, or PyTorch's packed int8), to show the memory saved."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
        elif isinstance(module, Int8Linear):
            total += module.weight_int8.numel() + module.scale.numel() * module.scale.element_size()
        elif isinstance(module, DynamicInt8Linear):  # int8 weight + one float64 scale per output channel
            weight = module.weight()
            total += weight.numel() + weight.q_per_channel_scales().numel() * 8
    return total
