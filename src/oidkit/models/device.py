"""Where a model runs: ``--device auto|cpu|cuda`` resolved in one place, and what changes on a GPU.

``auto`` picks CUDA when torch sees a GPU, else the CPU. Transformers models run SDPA attention on either
device (fused flash / memory-efficient kernels on CUDA) with no option from us: it is transformers' default
for every model that has it, Llama included (``PreTrainedModel.get_correct_attn_implementation``; eager for
those without), and our own Llama always calls ``F.scaled_dot_product_attention``. On CUDA, training batches
are built in pinned (page-locked) host memory (``train.packing``) and copied without blocking, so the copy
overlaps the GPU's work; bf16 autocast follows the training precision (``train.loop.autocast``). On the CPU
nothing changes.
"""

from __future__ import annotations

from typing import Any

import torch

from oidkit.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str = "auto", *, option: str = "--device") -> str:
    """``cpu`` or ``cuda`` for ``auto|cpu|cuda``; ``option`` names the setting in the error message."""
    if requested not in DEVICES:
        raise ConfigError(f"{option} {requested!r}: expected one of {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    if requested == "cuda" and not has_cuda:
        raise ConfigError(f"{option} cuda: torch sees no CUDA GPU here (torch {torch.__version__}, "
                          "torch.cuda.is_available() is False)\n"
                          f"hint: choose auto or cpu for {option} on this machine; on a GPU machine check "
                          "nvidia-smi and that torch is a CUDA build")
    return requested


def fast_dtype(device: str = "cpu") -> str:
    """The dtype a model generates fastest in on ``device`` (``cpu`` or ``cuda``) without losing range.

    CUDA: ``bfloat16`` where the GPU has it (Ampere and later), else ``float32``. CPU: ``bfloat16`` where it
    multiplies bf16 natively (AVX-512 BF16 or AMX): there a bf16 prefill of SmolLM2 runs ~2x faster than
    fp32 (docs/apps.md); without those instructions torch widens bf16 to fp32 inside every matmul, which is
    slower than fp32 itself. torch exposes the CPU check only privately, so a build without it counts as
    no native bf16.
    """
    if is_cuda(device):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    native = any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return "bfloat16" if native else "float32"


def is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def to_device(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; to a GPU with a non-blocking copy (training batches are built in pinned
    memory, ``train.packing.collate_rows``, so the copy overlaps the GPU's work)."""
    return tensor.to(device, non_blocking=is_cuda(device))


def model_device(model: Any) -> torch.device:
    """The device a model's inputs must be on: that of its first parameter."""
    return next(model.parameters()).device
