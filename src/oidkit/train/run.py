"""``oid train``: one entry for every training run, chosen by settings.

``model.init: pretrained`` + ``data.kind: chat`` fine-tunes a model on records (``finetune.py``);
``model.init: scratch`` + ``data.kind: text`` trains a new Llama on plain text (``pretrain.py``). Both build
their model and batches, then go through the same driver (``driver.py``): seeding, run folder, optimizer,
resume, loop, checkpoints, metrics, progress, plot.
"""

from __future__ import annotations

from typing import Any

from oidkit.train.config import TrainConfig
from oidkit.train.driver import with_resolved_device


def run_training(config: TrainConfig, *, resume: bool = False, console: Any = None) -> dict[str, Any]:
    """Train as configured; returns the summary written to ``RUN/summary.json``.

    ``resume``: continue from the latest ``RUN/checkpoints/step-N`` exactly where it stopped.
    """
    from rich.console import Console

    asked_device, config = config.train.device, with_resolved_device(config)
    console = console or Console(stderr=True)
    if config.model.init == "scratch":
        from oidkit.train.pretrain import pretrain

        return pretrain(config, resume=resume, console=console, asked_device=asked_device)
    from oidkit.train.finetune import finetune

    return finetune(config, resume=resume, console=console, asked_device=asked_device)


def summary_line(summary: dict[str, Any]) -> str:
    """The one line ``oid train`` / ``oid pretrain`` print at the end of a run."""
    if "parameters" in summary:  # from scratch: how far below a uniform guess it got
        line = (f"{summary['steps']} steps, {summary['tokens']:,} tokens, {summary['parameters']:,} parameters; "
                f"train loss {summary['first_train_loss']:.3f} -> {summary['final_train_loss']:.3f} "
                f"(uniform guess {summary['uniform_loss']:.2f})")
        if summary["best_eval_loss"] is not None:
            line += (f"; validation loss {summary['initial_eval_loss']:.3f} -> {summary['best_eval_loss']:.3f}, "
                     f"perplexity {summary['best_eval_perplexity']:.1f}")
        return line + f" -> {summary['model']}"
    data = summary["data"]["train"]
    return (f"{summary['steps']} steps, {summary['tokens']} tokens; final train loss "
            f"{summary['final_train_loss']:.4f}" + (f", best eval loss {summary['best_eval_loss']:.4f}"
                                                   if summary["best_eval_loss"] is not None else "")
            + f"; records {data['records']} (dropped {data['dropped']}, truncated "
            f"{data['truncated'] + data['truncated_answer']}, tokenisation cache {data['cache']})")
