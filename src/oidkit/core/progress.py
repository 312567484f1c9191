"""Progress display (rich), one place for every command: labelled bars, byte bars, the training display.

- :class:`LabelBars`: one bar per label, created on first use, fed ``(label, advance, total)``: curate's steps,
  eval's tasks;
- :func:`byte_bar`: a bar over input bytes with speed and time left: convert, inspect, validate, report;
- :class:`TrainProgress`: tokenisation, then training steps with loss, lr and tokens/s.

Where the console is not a terminal (output to a log file, ``nohup``) rich draws nothing until a bar stops, so
labelled bars and training also print a plain line at most every ``LINE_EVERY_S`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

ProgressFn = Callable[[str, int, "int | None"], None]  # (label, advance, total) -> None
LINE_EVERY_S = 60.0


class PlainLines:
    """A plain line per label at most every ``LINE_EVERY_S`` seconds, only where ``progress`` cannot draw."""

    def __init__(self, progress: Progress, enabled: bool):
        self.console = progress.console if enabled and not progress.console.is_terminal else None
        self.last: dict[str, float] = {}

    def __call__(self, label: str, done: int, total: int | None, stats: str = "") -> None:
        if self.console is None:
            return
        now = time.monotonic()
        if now - self.last.setdefault(label, now) >= LINE_EVERY_S:
            self.last[label] = now
            self.console.print(f"{label}: {done}/{total if total else '?'} {stats}".rstrip(), highlight=False)


class LabelBars:
    """Bars on ``console``, one per label, created on first use; a context manager (a no-op when disabled)."""

    def __init__(self, console: Any, *, enabled: bool = True, transient: bool = False):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, disable=not enabled, transient=transient)
        self.tasks: dict[str, Any] = {}
        self.done: dict[str, int] = {}
        self.lines = PlainLines(self.progress, enabled)

    def __call__(self, label: str, advance: int, total: int | None) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], advance=advance)
        self.done[label] = self.done.get(label, 0) + advance
        self.lines(label, self.done[label], total)

    def __enter__(self) -> LabelBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def byte_bar(label: str, total_bytes: int, console: Any) -> tuple[Progress, Callable[[int], None]]:
    """``(a transient bar over total_bytes, callback taking the bytes done so far)``."""
    bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=console, transient=True)
    task = bar.add_task(label, total=total_bytes)
    return bar, lambda done: bar.update(task, completed=done)


class TrainProgress:
    """Context manager; a disabled instance (processes other than 0) shows nothing."""

    def __init__(self, console: Any, enabled: bool = True):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                                 console=console, disable=not enabled)
        self._tokenise_task = self._train_task = None
        self.lines, self.total_steps = PlainLines(self.progress, enabled), None

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
        self.total_steps = total_steps

    def step(self, state: Any, row: dict) -> None:
        stats = f"loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['tokens_per_s']:.0f} tok/s"
        self.progress.update(self._train_task, completed=state.step, stats=stats)
        self.lines("train", state.step, self.total_steps, stats)
