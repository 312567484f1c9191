"""min_score: keep records a judge model scored high enough (``oid annotate`` writes ``meta.score``)."""

from __future__ import annotations

from typing import Any, Literal

from oidkit.curate.base import Filter, OpConfig, register


class MinScoreConfig(OpConfig):
    min: float = 4.0
    """Keep records whose score is at least this (annotate's default rubric scores 1-5, AlpaGasus keeps >= 4.5)."""
    field: str = "score"
    """The ``meta`` key that holds the score."""
    missing: Literal["drop", "keep"] = "drop"
    """Records without a score (never annotated, or the judge's verdict could not be parsed)."""


@register
class MinScore(Filter):
    """Drop records scored below ``min`` by a judge model (run ``oid annotate`` first)."""

    name = "min_score"
    Config = MinScoreConfig
    reasons = {"score_below_min": "the judge's score is below the minimum",
               "no_score": "the record has no score (not annotated, or an unparsable verdict)"}

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        score = record.get("meta", {}).get(self.config.field)
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            return self.config.missing == "keep", "no_score", score
        return score >= self.config.min, "score_below_min", score
