"""The rich progress display of a training run: tokenisation, then steps with loss, lr and tokens/s."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgress:
    """Context manager; a disabled instance (processes other than 0) shows nothing."""

    def __init__(self, console: Any, enabled: bool = True):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                                 console=console, disable=not enabled)
        self._tokenise_task = self._train_task = None

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def tokenising(self, records: int, kept: int) -> None:
        if self._tokenise_task is None:
            self._tokenise_task = self.progress.add_task("tokenise", total=None, stats="")
        self.progress.update(self._tokenise_task, completed=records, stats=f"{kept} examples kept")

    def start_training(self, total_steps: int, done: int) -> None:
        self._train_task = self.progress.add_task("train", total=total_steps, completed=done, stats="")

    def step(self, state: Any, row: dict) -> None:
        stats = f"loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['tokens_per_s']:.0f} tok/s"
        self.progress.update(self._train_task, completed=state.step, stats=stats)
