"""Progress per annotator and agreement between annotators (percent agreement and Cohen's kappa).

Cohen's kappa corrects the observed agreement ``p_o`` for the agreement two annotators would reach by
chance with their own label frequencies, ``p_e = sum_c p_a(c) * p_b(c)``: ``kappa = (p_o - p_e) / (1 - p_e)``
(1 when ``p_e`` is 1: both always gave the same single label). It is computed per pair of annotators over
the items both decided (accept/reject), and per label over the items both labelled (label present or not).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations

from oidkit.core.stats import wilson_interval
from oidkit.review.log import ReviewLog


def cohen_kappa(first: Sequence, second: Sequence) -> float:
    """Cohen's kappa of two annotators' labels for the same items, in the same order."""
    if len(first) != len(second) or not first:
        raise ValueError("kappa needs two non-empty label lists of the same length")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def percent_agreement(first: Sequence, second: Sequence) -> float:
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def pair_agreement(first: list, second: list) -> dict:
    """``n``, percent agreement and kappa of two aligned label lists (``None`` values when empty)."""
    if not first:
        return {"n": 0, "percent": None, "kappa": None}
    return {"n": len(first), "percent": round(percent_agreement(first, second), 4),
            "kappa": round(cohen_kappa(first, second), 4)}


def agreement(log: ReviewLog, labels: Sequence[str]) -> list[dict]:
    """For each pair of annotators: agreement on decisions, and on each label of the label set."""
    pairs = []
    for a, b in combinations(log.annotators(), 2):
        both = [d for d in log.decisions.values()
                if d.get(a, {}).get("decision") and d.get(b, {}).get("decision")]
        row = {"annotators": [a, b],
               "decisions": pair_agreement([d[a]["decision"] for d in both], [d[b]["decision"] for d in both])}
        labelled = [per_key for per_key in log.labels.values() if a in per_key and b in per_key]
        row["labels"] = {label: pair_agreement([label in per_key[a] for per_key in labelled],
                                               [label in per_key[b] for per_key in labelled]) for label in labels}
        pairs.append(row)
    return pairs


def progress(log: ReviewLog, keys: Sequence[str]) -> list[dict]:
    """Per annotator over ``keys`` (the sample, or all items): decided, accepted, rejected, labelled, edited."""
    rows = []
    for annotator in log.annotators():
        decided = [log.decisions[k][annotator]["decision"] for k in keys
                   if log.decisions.get(k, {}).get(annotator, {}).get("decision")]
        accepted = decided.count("accept")
        low, high = wilson_interval(accepted, len(decided))
        rows.append({"annotator": annotator, "total": len(keys), "decided": len(decided), "accepted": accepted,
                     "rejected": len(decided) - accepted,
                     "labelled": sum(1 for k in keys if log.labels.get(k, {}).get(annotator)),
                     "edited": sum(1 for k in keys if log.edits.get(k, {}).get("annotator") == annotator),
                     "accept_rate_95": [round(low, 4), round(high, 4)]})
    return rows
