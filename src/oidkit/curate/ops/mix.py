"""mix and split: sample sources by weights or caps; a seeded, stratified train/validation/test split."""

from __future__ import annotations

import random
from typing import Any

from pydantic import model_validator

from oidkit.curate.base import Decision, GlobalOp, OpConfig, register


def dotted_get(record: dict, path: str) -> Any:
    """``record["source"]["file"]`` for ``"source.file"``; None when any part is missing."""
    value: Any = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


class MixConfig(OpConfig):
    by: str = "source.file"
    """Dotted record field naming the source (e.g. source.file, source.format, meta.dataset)."""
    weights: dict[str, float] | None = None
    """Share of each source in the output; sources not listed are dropped. The output is the largest mix
    with exactly these shares (or `size` records if smaller)."""
    caps: dict[str, int] | None = None
    """At most this many records per source ("*" caps every source not listed)."""
    size: int | None = None
    """Total records wanted with weights (default: as many as the shares allow)."""
    seed: int = 0
    """Seed of the sampling."""

    @model_validator(mode="after")
    def _one_mode(self) -> MixConfig:
        if (self.weights is None) == (self.caps is None):
            raise ValueError("give exactly one of weights or caps")
        if self.weights is not None and (not self.weights or min(self.weights.values()) <= 0):
            raise ValueError("weights must be positive numbers, one per source")
        return self


@register
class Mix(GlobalOp):
    """Sample records per source, by weights (exact shares) or caps (at most N each), with a seed."""

    name = "mix"
    Config = MixConfig
    reasons = {"not_in_mix": "the source has no weight in the mix",
               "sampled_out": "not drawn when sampling the source to its share or cap (value: the source)"}

    def keys(self, records: list[dict]) -> list[Any]:
        return [str(dotted_get(r, self.config.by)) for r in records]

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        c = self.config
        by_source: dict[str, list[int]] = {}
        for i, source in enumerate(keys):
            by_source.setdefault(source, []).append(i)
        if c.weights is not None:
            total_weight = sum(c.weights.values())
            # The largest total for which no source runs out, then `size` if smaller.
            largest = min(len(by_source.get(s, [])) * total_weight / w for s, w in c.weights.items())
            total = min(largest, c.size) if c.size is not None else largest
            wanted = {s: int(total * w / total_weight) for s, w in c.weights.items()}
        else:
            wanted = {s: c.caps.get(s, c.caps.get("*", len(members))) for s, members in by_source.items()}
        rng = random.Random(c.seed)
        decisions = {}
        for source, members in by_source.items():
            if source not in wanted:
                decisions.update({i: Decision("not_in_mix", value=source) for i in members})
                continue
            chosen = set(rng.sample(members, min(wanted[source], len(members))))
            decisions.update({i: Decision("sampled_out", value=source,
                                          detail=f"kept {len(chosen)} of {len(members)}")
                              for i in members if i not in chosen})
        return decisions


class SplitConfig(OpConfig):
    ratios: dict[str, float] = {"train": 0.9, "validation": 0.05, "test": 0.05}
    """Split name -> share; shares must sum to 1."""
    stratify_by: str | None = "source.file"
    """Dotted record field whose values are split in the same proportions (null: no stratification)."""
    seed: int = 0
    """Seed of the shuffle: the same seed and input give the same split."""

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        if abs(sum(self.ratios.values()) - 1) > 1e-6 or min(self.ratios.values()) < 0:
            raise ValueError(f"ratios must be non-negative and sum to 1, got {self.ratios}")
        return self


@register
class Split(GlobalOp):
    """Assign every record to a split (meta.split), stratified and seeded; the runner writes one file each."""

    name = "split"
    Config = SplitConfig

    def keys(self, records: list[dict]) -> list[Any]:
        by = self.config.stratify_by
        return [str(dotted_get(r, by)) if by else "" for r in records]

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        rng = random.Random(self.config.seed)
        strata: dict[str, list[int]] = {}
        for i, stratum in enumerate(keys):
            strata.setdefault(stratum, []).append(i)
        decisions = {}
        for members in strata.values():
            rng.shuffle(members)
            # Cumulative rounding: each stratum's split sizes add up to its size exactly.
            start, cumulative = 0, 0.0
            for name, ratio in self.config.ratios.items():
                cumulative += ratio
                end = round(cumulative * len(members))
                decisions.update({i: Decision(meta={"split": name}) for i in members[start:end]})
                start = end
        return decisions
