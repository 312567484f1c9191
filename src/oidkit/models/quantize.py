"""int8 quantisation of a model's Linear layers for CPU serving and evaluation.

Each Linear weight matrix is stored as int8 with one float scale per output channel (per-channel symmetric:
``w ~ scale_row * q``, ``q`` in -127..127), a quarter of float32's memory. Activations are quantised on the
fly per batch (dynamic quantisation) so the matrix products run as int8 x int8 -> int32 on fbgemm / oneDNN
kernels; that is where the speed-up on long inputs comes from (benchmarks/bench_model.py measures it).

This uses PyTorch's eager ``torch.ao.quantization.quantize_dynamic``, which PyTorch marks deprecated in
favour of the separate ``torchao`` package; it still ships in torch 2.13, and swapping in ``torchao``'s
``quantize_(model, Int8DynamicActivationInt8WeightConfig())`` later changes only this file.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (float32, on CPU) whose ``nn.Linear`` layers are int8 per-channel; embeddings and
    norms stay float. Works on ``transformers`` models and on ``oidkit.models.llama.LlamaModel`` alike."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # the deprecation notice above, repeated once per layer
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.float().cpu().eval(), {nn.Linear: per_channel_dynamic_qconfig},
                                dtype=torch.qint8, inplace=False)


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes held by the Linear weights (float or int8 packed), to show the memory saved."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
        elif isinstance(module, DynamicInt8Linear):  # int8 weight + one float64 scale per output channel
            weight = module.weight()
            total += weight.numel() + weight.q_per_channel_scales().numel() * 8
    return total
