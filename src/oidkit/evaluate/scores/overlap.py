"""n-gram overlap with the reference: BLEU and chrF (sacrebleu, corpus level), ROUGE-1/2/L (per example too)."""

from __future__ import annotations

from typing import Any

from oidkit.evaluate import metrics
from oidkit.evaluate.scores.base import register


@register("bleu")
def bleu(rows: list[dict], options: Any) -> dict[str, float]:
    return {"bleu": metrics.bleu([r["output"] for r in rows], [r["reference"] for r in rows])}


@register("chrf")
def chrf(rows: list[dict], options: Any) -> dict[str, float]:
    return {"chrf": metrics.chrf([r["output"] for r in rows], [r["reference"] for r in rows])}


@register("rouge")
def rouge(rows: list[dict], options: Any) -> dict[str, float]:
    for row in rows:
        row["rougeL"] = metrics.rouge([row["output"]], [row["reference"]], options.chinese_rouge)["rougeL"]
    return metrics.rouge([r["output"] for r in rows], [r["reference"] for r in rows], options.chinese_rouge)
