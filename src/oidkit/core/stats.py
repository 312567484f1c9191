"""Paired bootstrap of a difference of means: is system B better than system A on the same items?

Both systems are scored on the same items; each resample draws item indices with replacement and takes
the mean of ``b - a`` over them (Koehn 2004, "Statistical significance tests for machine translation
evaluation", applied to per-item scores). The 95% interval is the 2.5th and 97.5th percentile of the
resampled differences; it "excludes zero" when both ends lie on the same side of 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = 1000, seed: int = 0) -> dict:
    """``{diff, low, high, excludes_zero}``: mean(b) - mean(a) with its seeded 95% bootstrap interval."""
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"paired scores need two lists of the same length, got {first.shape} and {second.shape}")
    if first.size == 0:
        return {"diff": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False}
    differences = second - first
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, differences.size, size=(resamples, differences.size))
    means = differences[indices].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": float(differences.mean()), "low": float(low), "high": float(high),
            "excludes_zero": bool(low > 0 or high < 0)}
