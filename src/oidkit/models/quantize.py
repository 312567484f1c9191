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

What is left in ``dynamic`` is a few input channels that are large in every token (LLM.int8()): they set the
token's scale and flatten the rest. With ``calibration`` text, SmoothQuant (Xiao et al. 2023) first moves
them into the weights: input channel ``j`` of the Linears that read an RMSNorm is divided by
``s_j = max|x_j|^alpha / max|w_j|^(1-alpha)`` (folded into the norm's weight) and their weight column ``j``
multiplied by it, an exact identity before rounding (checked on the calibration text). On SmolLM2 that
takes the perplexity change of ``dynamic`` from +2.7% to about +1% (docs/performance.md).

``benchmarks/bench_model.py`` measures speed and perplexity of both against float32.
"""

from __future__ import annotations

import copy
import warnings
from importlib.resources import files
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


# (norm, Linears reading its output) in one decoder layer: our Llama's names, then transformers' Llama family.
# The down projection is left out: its input is silu(gate) * up, whose scale could fold into up's rows, but
# measured on SmolLM2 that raised the perplexity change (+1.5% against +0.7% without it).
SMOOTHED_GROUPS = (
    ("attention_norm", ("attention.wq", "attention.wk", "attention.wv")),
    ("ffn_norm", ("feed_forward.w1", "feed_forward.w3")),
    ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
)


CHECKED_POSITIONS = 64  # positions of the calibration text on which smoothing is checked to be an identity


def calibration_tokens(tokenizer) -> torch.Tensor:
    """The packaged calibration text (chat in English and Chinese, code, arithmetic, JSON; ~1,300 tokens of
    SmolLM2's tokenizer) as a (1, n) batch of token ids."""
    text = files("oidkit.models").joinpath("static/calibration.txt").read_text(encoding="utf-8")
    return tokenizer(text, return_tensors="pt")["input_ids"]


def _norm_linear_groups(model: nn.Module) -> list[tuple[nn.Module, list[nn.Linear]]]:
    groups = []
    for layer in model.modules():
        for norm_name, linear_names in SMOOTHED_GROUPS:
            norm = getattr(layer, norm_name, None)
            if norm is None or not isinstance(getattr(norm, "weight", None), torch.Tensor):
                continue
            try:
                linears = [layer.get_submodule(name) for name in linear_names]
            except AttributeError:
                continue
            if all(isinstance(linear, nn.Linear) for linear in linears):
                groups.append((norm, linears))
    return groups


def _logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    out = model(tokens, position_ids=torch.arange(tokens.shape[1])[None])
    return getattr(out, "logits", out)


def smooth_activations(model: nn.Module, calibration: torch.Tensor, alpha: float = 0.5) -> int:
    """SmoothQuant in place: move activation outliers of the Linears after each RMSNorm into their weights.

    ``calibration`` is a (1, n) batch of token ids. Returns how many norm groups were smoothed: 0 when the
    model has none of the known layer names, or when the smoothed model's logits on the calibration text
    differ from the original's (a norm that is not ``weight * normalised``), in which case nothing changes.
    """
    groups = _norm_linear_groups(model)
    if not groups:
        return 0
    input_absmax: dict[int, torch.Tensor] = {}

    def record(linear: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        # the first position is left out: it carries the attention-sink token's massive activations, which
        # per-token scales already isolate; counted, they set s_j for a channel ordinary tokens do not use
        # (measured on SmolLM2 with the packaged text: -0.1% instead of +2.2% perplexity)
        x = inputs[0].detach()[:, 1:].reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0)
        input_absmax[id(linear)] = torch.maximum(input_absmax.get(id(linear), x), x)

    hooks = [linears[0].register_forward_hook(record) for _, linears in groups]
    try:
        with torch.no_grad():  # causal: the first positions' logits are those of a forward over them alone
            reference = _logits(model, calibration)[:, :CHECKED_POSITIONS]
    finally:
        for hook in hooks:
            hook.remove()
    saved = [(norm.weight.detach().clone(), [linear.weight.detach().clone() for linear in linears])
             for norm, linears in groups]
    with torch.no_grad():
        for norm, linears in groups:
            weight_absmax = torch.cat([linear.weight for linear in linears]).abs().amax(dim=0)
            scale = (input_absmax[id(linears[0])].clamp(min=1e-5).pow(alpha)
                     / weight_absmax.clamp(min=1e-5).pow(1 - alpha)).clamp(min=1e-5)
            norm.weight.div_(scale)
            for linear in linears:
                linear.weight.mul_(scale)
        smoothed = _logits(model, calibration[:, :CHECKED_POSITIONS])  # a short check: half the time of a full one
        if torch.allclose(smoothed, reference, rtol=1e-3, atol=1e-3 * float(reference.abs().max())):
            return len(groups)
        for (norm, linears), (norm_weight, linear_weights) in zip(groups, saved, strict=True):  # undo
            norm.weight.copy_(norm_weight)
            for linear, weight in zip(linears, linear_weights, strict=True):
                linear.weight.copy_(weight)
    return 0


def quantize_int8(model: nn.Module, mode: Mode = "weight", calibration: torch.Tensor | None = None) -> nn.Module:
    """An int8 copy of ``model`` (float32, CPU, eval mode); the original is left as it was.

    Works on ``transformers`` models and on ``oidkit.models.llama.LlamaModel`` alike; embeddings and norms
    stay float. With ``calibration`` token ids (``calibration_tokens``), activation outliers are first moved
    into the weights (``smooth_activations``), which is what brings ``dynamic`` close to float32.
    """
    model = copy.deepcopy(model).float().cpu().eval()
    if mode not in ("weight", "dynamic"):
        raise ValueError(f"unknown int8 mode {mode!r}; choose weight or dynamic")
    if calibration is not None:
        smooth_activations(model, calibration)
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
