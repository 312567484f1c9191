"""The training loop: a loop. Gradient accumulation, clipping, autocast, evaluation, early stopping.

It takes a model that returns its summed loss (``models.loss.TargetLoss``, possibly inside a
``DistributedDataParallel`` wrapper), an optimizer, a scheduler and ``get_batch(i)`` (micro-batch ``i`` of the
run, see ``packing.BatchSource``); what to save and where is decided by the caller through ``on_checkpoint``
and ``on_best``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from oidkit.core.chat import IGNORE_INDEX
from oidkit.models.device import to_device

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LoopSettings:
    max_steps: int
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    precision: str = "fp32"
    eval_every: int = 0
    early_stopping_patience: int | None = None
    save_every: int = 0
    log_every: int = 1
    device: str = "cpu"


@dataclass
class LoopState:
    """What the loop needs besides weights and optimizer to continue exactly where it stopped."""

    step: int = 0
    best_eval: float = math.inf
    evals_without_improvement: int = 0
    tokens: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)
    grad_scaler: dict = field(default_factory=dict)  # fp16 loss scale and its growth tracker; empty otherwise

    def to_dict(self) -> dict:
        return asdict(self)


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[precision])


def token_loss_sum(model: torch.nn.Module, batch: dict, precision: str = "fp32", device: str = "cpu") -> torch.Tensor:
    """Summed cross-entropy over the target tokens of a batch (labels are pre-shifted, -100 ignored).

    ``model`` computes its own loss: a ``models.loss.TargetLoss`` (or a ``DistributedDataParallel`` around
    one), which runs the output head only on the target positions.
    """
    with autocast(precision, device):
        return model(input_ids=to_device(batch["input_ids"], device),
                     position_ids=to_device(batch["position_ids"], device),
                     labels=to_device(batch["labels"], device)).float()


def target_count(batch: dict) -> int:
    return int((batch["labels"] != IGNORE_INDEX).sum())


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[dict], precision: str = "fp32", device: str = "cpu") -> float:
    """Mean loss per target token over ``batches``."""
    was_training = model.training
    model.eval()
    total = sum(float(token_loss_sum(model, b, precision, device)) for b in batches)
    count = sum(target_count(b) for b in batches)
    model.train(was_training)
    return total / max(count, 1)


def train_loop(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
    get_batch: Callable[[int], dict], settings: LoopSettings, *, state: LoopState | None = None,
    eval_batches: list[dict] | None = None, log: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[LoopState], None] | None = None, on_best: Callable[[LoopState], None] | None = None,
    progress: Callable[[LoopState, dict], None] | None = None,
) -> LoopState:
    """Run optimizer steps from ``state.step`` to ``settings.max_steps`` (or until early stopping)."""
    state = state or LoopState()
    scaler = torch.amp.GradScaler(torch.device(settings.device).type, enabled=settings.precision == "fp16")
    if state.grad_scaler:
        scaler.load_state_dict(state.grad_scaler)
    model.train()
    start_time, start_tokens = time.perf_counter(), state.tokens
    if eval_batches and settings.eval_every and state.step == 0:  # the starting point of the eval curve
        _evaluate_and_track(model, eval_batches, settings, state, log, on_best, 0.0)
    while state.step < settings.max_steps and not state.stopped_early:
        micro_batches = [get_batch(state.step * settings.grad_accum + i) for i in range(settings.grad_accum)]
        targets = max(1, sum(target_count(b) for b in micro_batches))
        loss_total = 0.0
        for i, batch in enumerate(micro_batches):
            # Only the last micro-batch synchronises gradients between processes (DDP); no-op otherwise.
            sync = i == len(micro_batches) - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                loss = token_loss_sum(model, batch, settings.precision, settings.device) / targets
                scaler.scale(loss).backward()
            loss_total += float(loss.detach())
            state.tokens += int(batch["tokens"])
        scaler.unscale_(optimizer)
        params = [p for p in model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.grad_clip or math.inf)
        scaler.step(optimizer)
        scaler.update()
        state.grad_scaler = scaler.state_dict()
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        state.step += 1
        elapsed = time.perf_counter() - start_time
        row = {"step": state.step, "split": "train", "loss": loss_total, "lr": lr, "tokens": state.tokens,
               "tokens_per_s": (state.tokens - start_tokens) / max(elapsed, 1e-9), "grad_norm": float(grad_norm),
               "elapsed_s": elapsed}
        state.history.append({"step": state.step, "loss": loss_total})
        if log and state.step % settings.log_every == 0:
            log(row)
        if progress:
            progress(state, row)
        if eval_batches and (state.step % max(settings.eval_every, 1) == 0 if settings.eval_every
                             else state.step == settings.max_steps):
            _evaluate_and_track(model, eval_batches, settings, state, log, on_best, elapsed)
        if on_checkpoint and settings.save_every and state.step % settings.save_every == 0:
            on_checkpoint(state)
    return state


def _evaluate_and_track(model: torch.nn.Module, batches: list[dict], settings: LoopSettings, state: LoopState,
                        log: Callable | None, on_best: Callable | None, elapsed: float) -> None:
    loss = evaluate(model, batches, settings.precision, settings.device)
    if log:
        log({"step": state.step, "split": "eval", "loss": loss, "elapsed_s": elapsed})
    if loss < state.best_eval:
        state.best_eval, state.evals_without_improvement = loss, 0
        if on_best:
            on_best(state)
    else:
        state.evals_without_improvement += 1
        patience = settings.early_stopping_patience
        state.stopped_early = bool(patience and state.evals_without_improvement >= patience)
