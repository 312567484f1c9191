"""Metrics of generated answers, by task kind. Adding a metric: one module here with a ``@register("name")``
function (see ``base.py``), imported below, and its name in ``TASK_METRICS``."""

from __future__ import annotations

from typing import Any

from oidkit.errors import ConfigError
from oidkit.evaluate.scores import gsm8k, match, overlap
from oidkit.evaluate.scores.base import REGISTRY

__all__ = ["TASK_METRICS", "gsm8k", "match", "overlap", "score"]

# The metrics each task kind reports, in report order.
TASK_METRICS: dict[str, list[str]] = {
    "gsm8k": ["gsm8k_accuracy"],
    "generation": ["bleu", "chrf", "rouge", "exact_match", "f1"],
    "records": ["bleu", "chrf", "rouge", "exact_match", "f1"],
}


def score(kind: str, rows: list[dict], options: Any) -> dict[str, float]:
    """Run every metric of task ``kind`` on ``rows`` (which gain per-example fields); corpus values and ``n``."""
    corpus: dict[str, float] = {}
    for name in TASK_METRICS[kind]:
        if name not in REGISTRY:
            raise ConfigError(f"metric {name!r} of task kind {kind!r} is not registered; known: {', '.join(REGISTRY)}")
        corpus.update(REGISTRY[name](rows, options))
    return {**corpus, "n": len(rows)}
