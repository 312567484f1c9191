"""Progress where rich cannot draw (a log file, nohup): plain lines, throttled; none on a terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from oidkit.core import progress as progress_module
from oidkit.core.progress import LabelBars, TrainProgress


def test_a_log_file_gets_plain_lines_throttled_and_a_terminal_only_its_bars(monkeypatch):
    log = io.StringIO()
    with LabelBars(Console(file=log, width=200), transient=True) as bars:
        for _ in range(3):
            bars("generate base", 16, 48)
    assert "generate base:" not in log.getvalue()  # within the first minute: nothing yet

    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)
    log = io.StringIO()
    with LabelBars(Console(file=log, width=200), transient=True) as bars:
        for _ in range(3):
            bars("generate base", 16, 48)
    assert [line for line in log.getvalue().splitlines() if line.startswith("generate base:")] == [
        "generate base: 16/48", "generate base: 32/48", "generate base: 48/48"]

    log = io.StringIO()
    with TrainProgress(Console(file=log, width=200)) as bars:
        bars.start_training(600, 0)
        bars.step(SimpleNamespace(step=5), {"loss": 1.5, "lr": 3e-4, "tokens_per_s": 147.0})
    assert "train: 5/600 loss 1.5000  lr 3.00e-04  147 tok/s" in log.getvalue()

    terminal = io.StringIO()
    with LabelBars(Console(file=terminal, width=200, force_terminal=True), transient=True) as bars:
        bars("generate base", 16, 48)
    assert "generate base:" not in terminal.getvalue()
