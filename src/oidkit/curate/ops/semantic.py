"""semantic_dedup and select_diverse: model-based selection over sentence embeddings.

Both are global operators: ``keys`` embeds a batch (parallel, once per worker model load), ``resolve``
sees every embedding at once. The encoder loads lazily in ``setup``, so recipes without these steps never
import torch.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from oidkit.curate.base import Decision, GlobalOp, OpConfig, register
from oidkit.curate.ops.dedup import score_of
from oidkit.curate.semantic import (
    DEFAULT_EMBEDDING_MODEL,
    embed,
    k_center_greedy,
    load_encoder,
    score_first_diverse,
    semantic_duplicates,
)
from oidkit.records import first_user, text


class EmbeddingConfig(OpConfig):
    model: str = DEFAULT_EMBEDDING_MODEL
    """Sentence-transformers model: the packaged all-MiniLM-L6-v2 by default, or a folder / model name."""
    field: Literal["instruction", "conversation"] = "instruction"
    """Embed the first user turn (instruction) or the whole conversation's user and assistant text."""
    max_chars: int = 2000
    """Embed the first N characters (the encoder truncates at 256 word pieces anyway)."""
    batch_size: int = 64


class SemanticDedupConfig(EmbeddingConfig):
    threshold: float = 0.95
    """Cosine similarity at or above which two records are duplicates (joined transitively)."""
    keep: Literal["first", "longest", "score"] = "first"
    """Which record of a duplicate cluster survives: the earliest, the longest, or the highest meta.score."""


class SelectDiverseConfig(EmbeddingConfig):
    n: int
    """How many records to keep."""
    method: Literal["k_center", "score_first"] = "k_center"
    """k_center: cover the embedding space (farthest-point); score_first: DEITA, best meta.score first."""
    min_distance: float = 0.1
    """score_first only: a record is taken when its cosine distance to all taken ones exceeds this."""


class _Embedding(GlobalOp):
    def setup(self) -> None:
        self.encoder = load_encoder(self.config.model)

    def keys(self, records: list[dict]) -> list[Any]:
        if not hasattr(self, "encoder"):
            self.setup()
        field = first_user if self.config.field == "instruction" else text
        texts = [field(r)[: self.config.max_chars] for r in records]
        vectors = embed(texts, self.encoder, batch_size=self.config.batch_size)
        return [(v, len(t), score_of(r, "score")) for v, t, r in zip(vectors, texts, records, strict=True)]


@register
class SemanticDedup(_Embedding):
    """Drop records whose embedding is within a cosine threshold of a kept record's (exact search)."""

    name = "semantic_dedup"
    Config = SemanticDedupConfig
    reasons = {"semantic_duplicate": "cosine similarity to a kept record at or above the threshold"}

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        if not keys:
            return {}
        vectors = np.stack([k[0] for k in keys])
        priority = {"first": None, "longest": np.array([k[1] for k in keys], dtype=float),
                    "score": np.array([k[2] for k in keys], dtype=float)}[self.config.keep]
        representative, similarity = semantic_duplicates(vectors, self.config.threshold, priority=priority)
        return {i: Decision("semantic_duplicate", round(float(similarity[i]), 4), duplicate_of=ids[rep])
                for i, rep in enumerate(representative) if rep != i}


@register
class SelectDiverse(_Embedding):
    """Keep N records that cover the embedding space (k-center) or the best-scored diverse ones (DEITA)."""

    name = "select_diverse"
    Config = SelectDiverseConfig
    reasons = {"not_selected": "not among the N records chosen for diversity"}

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        if not keys:
            return {}
        vectors = np.stack([k[0] for k in keys])
        if self.config.method == "k_center":
            picked = k_center_greedy(vectors, self.config.n)
        else:
            scores = np.array([k[2] for k in keys], dtype=float)
            picked = score_first_diverse(vectors, scores, self.config.n, self.config.min_distance)
        chosen = set(picked)
        return {i: Decision("not_selected", detail=f"{self.config.method} kept {len(chosen)}")
                for i in range(len(keys)) if i not in chosen}
