"""AdamW and the learning-rate schedules (warmup, then cosine / linear decay or constant)."""

from __future__ import annotations

import math
from typing import Literal

import torch

FUSED_DEVICES = {"cpu", "cuda"}  # where torch has a fused AdamW kernel (also mps and xpu, untested here)


def build_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; biases and norm weights (1-D tensors) get no weight decay.

    The fused kernel updates each parameter in one pass over its memory instead of the ~8 passes of the
    multi-tensor (foreach) one: on SmolLM2-135M with 2 shared CPU threads the step took 2-6 s instead of
    23-37 s (docs/performance.md). It needs every parameter on a device that has the kernel.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = bool(trainable) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in trainable)
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, fused=fused)


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int = 0,
                  schedule: Literal["cosine", "linear", "constant"] = "cosine", min_ratio: float = 0.1) -> float:
    """Factor applied to the peak lr at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * decay


def build_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int = 0,
                    schedule: Literal["cosine", "linear", "constant"] = "cosine",
                    min_ratio: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`lr_multiplier`; step it once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, total_steps=total_steps, warmup_steps=warmup_steps,
                                              schedule=schedule, min_ratio=min_ratio))
