"""What every training run does around the loop, for ``oid train`` and ``oid pretrain`` alike.

Both commands build a model and batches their own way (a pretrained model with LoRA on chat records; a
Llama from scratch on plain text), then hand them here: seeding and the run folder (:func:`start_run`),
optimizer and schedule, resume, data parallel wrapping, metrics, checkpoints, best weights and progress
(:func:`drive`), and the closing files (:func:`finish_run`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from oidkit.core.runs import MetricsLog, plot_loss
from oidkit.models.device import resolve_device
from oidkit.models.loss import TargetLoss
from oidkit.train.checkpoint import resume_latest, save_checkpoint
from oidkit.train.config import LoopSection, OptimSection, refuse_run_dir_holding_data, save_config
from oidkit.train.loop import LoopSettings, LoopState, evaluate, train_loop
from oidkit.train.optim import build_optimizer, build_scheduler


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def with_resolved_device(config: Any) -> Any:
    """``config`` with ``train.device`` resolved (auto -> cuda or cpu) before any work, so a missing GPU fails
    at once; ``summary.json`` says where the run went (``device``)."""
    device = resolve_device(config.train.device, option="train.device (--device)")
    return config.model_copy(update={"train": config.train.model_copy(update={"device": device})})


def start_run(config: BaseModel, t: LoopSection, *, asked_device: str, is_main: bool = True) -> Path:
    """Threads, the run folder with the validated ``config.yaml`` (process 0), seeds; returns the folder.

    ``config.yaml`` keeps the device as the user asked (``auto`` by default), not the one it resolved to, so a
    copied config (or a resume) runs on any machine.
    """
    if t.threads:
        torch.set_num_threads(t.threads)
    run_dir = Path(t.output_dir)
    if is_main:
        refuse_run_dir_holding_data(config)
        run_dir.mkdir(parents=True, exist_ok=True)
        as_asked = config.model_copy(update={"train": t.model_copy(update={"device": asked_device})})
        save_config(as_asked, run_dir / "config.yaml")
    seed_everything(t.seed)
    return run_dir


def optimizer_and_scheduler(model: torch.nn.Module, optim: OptimSection, max_steps: int) -> tuple[Any, Any]:
    """AdamW and its warmup + decay schedule as the ``optim`` section says."""
    optimizer = build_optimizer(model, lr=optim.lr, weight_decay=optim.weight_decay, betas=optim.betas)
    return optimizer, build_scheduler(optimizer, total_steps=max_steps, warmup_steps=optim.warmup_steps,
                                      schedule=optim.schedule, min_ratio=optim.min_lr_ratio)


def loop_settings(t: LoopSection, optim: OptimSection) -> LoopSettings:
    """The loop's settings from the ``train`` and ``optim`` sections."""
    return LoopSettings(max_steps=t.max_steps, grad_accum=t.grad_accum, grad_clip=optim.grad_clip,
                        precision=t.precision, eval_every=t.eval_every,
                        early_stopping_patience=t.early_stopping_patience, save_every=t.save_every,
                        log_every=t.log_every, device=t.device)


@dataclass
class Driven:
    """The end of :func:`drive`: the loop's state, the trained model (as given, never wrapped), the log."""

    state: LoopState
    model: torch.nn.Module
    metrics: MetricsLog | None


def drive(model: torch.nn.Module, get_batch: Callable[[int], dict], validation: list[dict] | None,
          t: LoopSection, optim: OptimSection, run_dir: Path, *, save_weights: Callable[[Path], None],
          bars: Any, console: Any, resume: bool = False, is_main: bool = True, world: int = 1,
          eval_at_start: bool = False) -> Driven:
    """Optimizer, resume, the loop with metrics, checkpoints and best weights (process 0 writes), last checkpoint.

    ``eval_at_start``: log the untrained model's eval loss at step 0 even without ``eval_every`` (which does
    it anyway), so pretraining shows where it started (about ln(vocab)).
    """
    optimizer, scheduler = optimizer_and_scheduler(model, optim, t.max_steps)
    resumed = resume_latest(run_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                            console=console) if resume else None
    state = resumed or LoopState()
    # the loop calls a module that returns the loss, so data parallel wraps the whole step, loss included
    trained: torch.nn.Module = TargetLoss(model)
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(trained)

    def on_checkpoint(s: LoopState) -> None:
        if is_main:
            save_checkpoint(run_dir / "checkpoints" / f"step-{s.step:06d}", model=model,
                            optimizer=optimizer, scheduler=scheduler, step=s.step, loop_state=s.to_dict())

    def on_best(s: LoopState) -> None:
        if is_main:
            save_weights(run_dir / "best")

    metrics = MetricsLog(run_dir, resume_step=state.step if resumed else None) if is_main else None
    if metrics and eval_at_start and validation and not t.eval_every and not resumed:
        metrics.log({"step": 0, "split": "eval", "loss": evaluate(trained, validation, t.precision, t.device)})
    bars.start_training(t.max_steps, state.step)
    state = train_loop(trained, optimizer, scheduler, get_batch, loop_settings(t, optim), state=state,
                       eval_batches=validation, log=metrics.log if metrics else None, on_checkpoint=on_checkpoint,
                       on_best=on_best, progress=bars.step)
    if t.save_every and state.step % t.save_every:
        on_checkpoint(state)
    return Driven(state, model, metrics)


def finish_run(driven: Driven, run_dir: Path, weights_folder: str, save_weights: Callable[[Path], None]) -> None:
    """Process 0: close the metrics, save the final weights to ``RUN/<weights_folder>``, plot the loss."""
    if driven.metrics is None:
        return
    driven.metrics.close()
    save_weights(run_dir / weights_folder)
    plot_loss(run_dir / "metrics.csv", run_dir / "loss.png")
