"""Small statistics the stages share: a confidence interval for a proportion, a paired bootstrap."""

from __future__ import annotations

import math
import random


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); ``(0, 1)`` when there are no trials."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(a: list[float], b: list[float], *, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """Mean of ``b - a`` over paired per-item scores, with a percentile bootstrap interval.

    Items are resampled with replacement (the same items for both systems, so the pairing holds);
    ``excludes_zero`` says the interval lies wholly on one side of 0. Seeded: the same inputs give the
    same interval.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty score lists (got {len(a)}, {len(b)})")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[math.floor(tail * (resamples - 1))]
    high = means[math.ceil((1 - tail) * (resamples - 1))]
    return {"diff": sum(diffs) / n, "low": low, "high": high, "excludes_zero": low > 0 or high < 0}
