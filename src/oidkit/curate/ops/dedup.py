"""exact_dedup and near_dedup: drop repeated records, each reject naming the record it duplicated."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from oidkit.curate.base import Decision, GlobalOp, OpConfig, register
from oidkit.curate.minhash import (
    VERIFIED_FALSE_NEGATIVE_WEIGHT,
    duplicate_clusters,
    estimate_jaccard,
    lsh_params,
    minhash_signatures,
)
from oidkit.curate.text import digest, normalised
from oidkit.records import first_user, text

Field = Literal["instruction", "conversation"]


def field_text(record: dict, field: Field) -> str:
    """The text a dedup compares: the first user turn, or all user and assistant turns."""
    return first_user(record) if field == "instruction" else text(record)


def score_of(record: dict, score_field: str) -> float:
    """``meta[score_field]`` as a number; records without one rank last."""
    value = record.get("meta", {}).get(score_field)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("-inf")


def pick_representative(members: list[int], keep: str, lengths: list[int], scores: list[float]) -> int:
    """The member a cluster keeps: the first, the longest or the best-scored (ties go to the earliest)."""
    if keep == "longest":
        return max(members, key=lambda i: (lengths[i], -i))
    if keep == "score":
        return max(members, key=lambda i: (scores[i], -i))
    return min(members)


class ExactDedupConfig(OpConfig):
    field: Field = "conversation"
    """Compare the first user turn (instruction) or the whole conversation."""
    keep: Literal["first", "longest", "score"] = "first"
    """Which copy survives: the earliest, the one with the longest conversation, or the best meta score."""
    score_field: str = "score"
    """meta key holding the score for keep=score."""


@register
class ExactDedup(GlobalOp):
    """Drop records whose normalised text (NFKC, lower case, single spaces) equals a kept record's."""

    name = "exact_dedup"
    Config = ExactDedupConfig
    reasons = {"exact_duplicate": "the same normalised text as the kept record named in duplicate_of"}

    def keys(self, records: list[dict]) -> list[Any]:
        return [(digest(normalised(field_text(r, self.config.field))), len(text(r)),
                 score_of(r, self.config.score_field)) for r in records]

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        groups: dict[str, list[int]] = {}
        for i, (key, _, _) in enumerate(keys):
            groups.setdefault(key, []).append(i)
        lengths, scores = [k[1] for k in keys], [k[2] for k in keys]
        decisions = {}
        for members in groups.values():
            if len(members) < 2:
                continue
            kept = pick_representative(members, self.config.keep, lengths, scores)
            for i in members:
                if i != kept:
                    decisions[i] = Decision("exact_duplicate", value=keys[i][0], duplicate_of=ids[kept],
                                            detail=f"same normalised {self.config.field}")
        return decisions


class NearDedupConfig(OpConfig):
    field: Field = "conversation"
    """Compare the first user turn (instruction) or the whole conversation."""
    unit: Literal["auto", "word", "char"] = "auto"
    """Shingle unit: words, characters, or auto (characters for CJK text, words otherwise)."""
    ngram: int = 5
    """Shingle length in units."""
    num_perm: int = 128
    """MinHash permutations (signature length)."""
    threshold: float = 0.8
    """Jaccard similarity from which two records are near duplicates; chooses bands x rows unless given."""
    bands: int | None = None
    """LSH bands; set together with rows to override the threshold-derived choice."""
    rows: int | None = None
    """LSH rows per band (bands * rows must not exceed num_perm; unused permutations are ignored)."""
    keep: Literal["first", "longest", "score"] = "first"
    """Which member of a cluster (a connected component of near-duplicate pairs) survives."""
    score_field: str = "score"
    """meta key holding the score for keep=score."""
    max_chars: int = 20_000
    """Shingle the first N characters only: bounds the cost of very long conversations."""
    seed: int = 1
    """Seed of the MinHash permutations (same seed, same signatures as datasketch)."""

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (then the threshold chooses them)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows must not exceed num_perm ({self.bands} * {self.rows} > {self.num_perm})")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        return self


@register
class NearDedup(GlobalOp):
    """MinHash LSH near-duplicate removal: a cluster of similar records keeps one representative."""

    name = "near_dedup"
    Config = NearDedupConfig
    reasons = {"near_duplicate": "estimated Jaccard similarity to the kept record in duplicate_of >= threshold"}

    def keys(self, records: list[dict]) -> list[Any]:
        c = self.config
        texts = [field_text(r, c.field)[: c.max_chars] for r in records]
        signatures = minhash_signatures(texts, num_perm=c.num_perm, ngram=c.ngram, unit=c.unit, seed=c.seed)
        return [(signature, len(text(r)), score_of(r, c.score_field))
                for signature, r in zip(signatures, records, strict=True)]

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        if not keys:
            return {}
        c = self.config
        signatures = np.stack([k[0] for k in keys])
        bands, rows = (c.bands, c.rows) if c.bands else lsh_params(c.threshold, c.num_perm,
                                                                     VERIFIED_FALSE_NEGATIVE_WEIGHT)
        labels = duplicate_clusters(signatures, bands=bands, rows=rows, threshold=c.threshold)
        clusters: dict[int, list[int]] = {}
        for i, label in enumerate(labels.tolist()):
            clusters.setdefault(label, []).append(i)
        lengths, scores = [k[1] for k in keys], [k[2] for k in keys]
        decisions = {}
        for members in clusters.values():
            if len(members) < 2:
                continue
            kept = pick_representative(members, c.keep, lengths, scores)
            for i in members:
                if i != kept:
                    similarity = estimate_jaccard(signatures[i], signatures[kept])
                    decisions[i] = Decision("near_duplicate", value=round(float(similarity), 4), duplicate_of=ids[kept],
                                            detail=f"cluster of {len(members)}, bands={bands} rows={rows}")
        return decisions
