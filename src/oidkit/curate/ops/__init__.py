"""The built-in operators; importing this package registers them (see ``oidkit.curate.base.REGISTRY``)."""

from oidkit.curate.ops import decontam, dedup, heuristics, language, mix, normalise, pii, score, semantic

__all__ = ["decontam", "dedup", "heuristics", "language", "mix", "normalise", "pii", "score", "semantic"]
