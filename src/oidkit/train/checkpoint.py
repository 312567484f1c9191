"""Checkpoints that resume exactly: trainable weights, optimizer, scheduler, RNG states and data position.

Layout of ``RUN/checkpoints/step-000123/``: ``trainable.safetensors`` (only parameters that train: the LoRA
matrices, or everything for full fine-tuning) and ``state.pt`` (optimizer, scheduler, RNG, step, loop state).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from oidkit.atomic import atomic_folder
from oidkit.errors import ConfigError
from oidkit.train.loop import LoopState


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require grad, by name (contiguous copies, safe to save)."""
    return {name: p.detach().contiguous().clone() for name, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    """Every random generator the loop uses (torch, numpy, Python; CUDA's too on a GPU: dropout draws there)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(folder: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, step: int, loop_state: dict | None = None) -> Path:
    """Write a checkpoint to ``folder`` (written to a temporary folder first, then renamed)."""
    folder = Path(folder)
    with atomic_folder(folder, owned=True) as staging:
        save_file(trainable_state(model), staging / "trainable.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                    "step": step, "loop": loop_state or {}}, staging / "state.pt")
    return folder


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``RUN/checkpoints``, or ``None``."""
    found = sorted((Path(run_dir) / "checkpoints").glob("step-*[0-9]"))
    return found[-1] if found else None


def load_checkpoint(folder: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> dict:
    """Restore a checkpoint into model/optimizer/scheduler/RNG; returns ``{"step", "loop"}``."""
    folder = Path(folder)
    if not (folder / "state.pt").exists():
        raise ConfigError(f"{folder}: not a checkpoint (state.pt missing); checkpoints live in RUN/checkpoints")
    weights = load_file(folder / "trainable.safetensors")
    missing = set(weights) - {name for name, _ in model.named_parameters()}
    if missing:
        raise ConfigError(f"{folder}: checkpoint has parameters the model lacks ({sorted(missing)[:3]}...); "
                          "was it made with another model or method?")
    model.load_state_dict(weights, strict=False)
    state = torch.load(folder / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return {"step": state["step"], "loop": state["loop"]}


def resume_latest(run_dir: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                  console: Any) -> LoopState | None:
    """``--resume``: restore the latest checkpoint of ``run_dir``; ``None`` (said on ``console``) if there is none."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        console.print(f"no checkpoint in {Path(run_dir) / 'checkpoints'}: starting from step 0")
        return None
    state = LoopState(**load_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler)["loop"])
    console.print(f"resumed from {checkpoint} at step {state.step}")
    return state
