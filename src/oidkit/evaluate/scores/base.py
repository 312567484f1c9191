"""The metric registry: a metric is a function registered under a name.

``fn(rows, options) -> {corpus metric: value}``: ``rows`` are the task's examples, each with ``output`` (the
model's answer) and ``reference``; the function may add per-example fields to each row (``row["f1"]``).
``options`` is the run's ``EvalOptions`` (e.g. ``chinese_rouge``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MetricFn = Callable[[list[dict], Any], dict[str, float]]
REGISTRY: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: make ``fn`` available as metric ``name`` (list it in ``TASK_METRICS`` to run it)."""
    def add(fn: MetricFn) -> MetricFn:
        REGISTRY[name] = fn
        return fn

    return add
