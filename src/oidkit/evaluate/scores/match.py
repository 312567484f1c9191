"""SQuAD-style answer matching: exact match and token F1 after normalisation, per example and averaged."""

from __future__ import annotations

from typing import Any

from oidkit.evaluate import metrics
from oidkit.evaluate.scores.base import register


@register("exact_match")
def exact_match(rows: list[dict], options: Any) -> dict[str, float]:
    for row in rows:
        row["exact_match"] = metrics.exact_match(row["output"], row["reference"])
    return {"exact_match": sum(r["exact_match"] for r in rows) / max(len(rows), 1)}


@register("f1")
def f1(rows: list[dict], options: Any) -> dict[str, float]:
    for row in rows:
        row["f1"] = metrics.token_f1(row["output"], row["reference"])
    return {"f1": sum(r["f1"] for r in rows) / max(len(rows), 1)}
