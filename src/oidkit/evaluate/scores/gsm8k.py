"""GSM8K accuracy: the last number of the answer against the reference's ``#### N``, with a Wilson interval."""

from __future__ import annotations

from typing import Any

from oidkit.core.stats import wilson_interval
from oidkit.evaluate import metrics
from oidkit.evaluate.scores.base import register


@register("gsm8k_accuracy")
def gsm8k_accuracy(rows: list[dict], options: Any) -> dict[str, float]:
    for row in rows:
        row["reference_number"] = metrics.gsm8k_reference(row["reference"])
        row["predicted_number"] = metrics.extract_number(row["output"])
        row["correct"] = metrics.numbers_equal(row["predicted_number"], row["reference_number"])
    correct = sum(r["correct"] for r in rows)
    low, high = wilson_interval(correct, len(rows))
    return {"accuracy": correct / max(len(rows), 1), "ci95_low": low, "ci95_high": high}
