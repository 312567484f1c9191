"""Small statistics shared by evaluate, review and the applications (oidkit.core.stats)."""

from __future__ import annotations

import pytest

from oidkit.core.stats import paired_bootstrap


def test_paired_bootstrap_against_hand_computed_cases():
    # Every difference is 1: every resample's mean is 1, so is the interval.
    assert paired_bootstrap([0.0, 0.5, 1.0], [1.0, 1.5, 2.0]) == {"diff": 1.0, "low": 1.0, "high": 1.0,
                                                                 "excludes_zero": True}
    # Differences 2 and 0: a resample of two has mean 0, 1 or 2 with chance 1/4, 1/2, 1/4, so the 2.5% and 97.5%
    # points of 1000 resamples are 0 and 2 and the interval holds 0.
    result = paired_bootstrap([0.0, 1.0], [2.0, 1.0], resamples=1000, seed=3)
    assert result == {"diff": 1.0, "low": 0.0, "high": 2.0, "excludes_zero": False}
    assert paired_bootstrap([0.0, 1.0], [2.0, 1.0], seed=3) == result  # seeded
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 2.0])
    # Differences [1, 0]: a resample of two items has mean 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so the
    # 2.5th percentile is 0 and the 97.5th is 1: the interval touches zero and does not exclude it.
    result = paired_bootstrap([0, 0], [1, 0], resamples=2000, seed=0)
    assert result == {"diff": 0.5, "low": 0.0, "high": 1.0, "excludes_zero": False}
    # Every item improves by exactly 2: every resample's mean is 2.
    assert paired_bootstrap([1, 2, 3], [3, 4, 5]) == {"diff": 2.0, "low": 2.0, "high": 2.0, "excludes_zero": True}
    worse = paired_bootstrap([0.9] * 50 + [0.5] * 50, [0.1] * 50 + [0.5] * 50)
    assert worse["diff"] == pytest.approx(-0.4) and worse["high"] < 0 and worse["excludes_zero"]
    assert paired_bootstrap([0.3, 0.1], [0.2, 0.6], seed=3) == paired_bootstrap([0.3, 0.1], [0.2, 0.6], seed=3)
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])
