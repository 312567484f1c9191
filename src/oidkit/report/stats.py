"""Every number the report shows, computed in one streaming pass over the records.

Definitions (the report and docs/report.md use the same words):

- *turns* of a record: its messages other than system (user, assistant and tool turns);
- *token length*: per message, by the tokenizer named in ``tokenizer`` (see :mod:`oidkit.report.tokens`);
- *language*: the one rule of :mod:`oidkit.core.language` (``meta["lang"]`` when curation set it, else
  the answer's language, else the user's; ``"unknown"`` when there is too little text);
- percentiles: numpy's default (linear interpolation between the closest ranks).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from oidkit.core.language import LanguageIdentifier, record_language
from oidkit.records import first_user
from oidkit.report.tokens import TokenCounter
from oidkit.report.verbs import first_word_zh, verb_object

PERCENTILES = (10, 25, 50, 75, 90, 99)
BATCH = 512
TOP_VERBS, TOP_OBJECTS, TOP_ZH_WORDS = 20, 4, 20


def distribution(values: np.ndarray) -> dict[str, float | int]:
    """Count, total, mean, min, max and percentiles of ``values`` (zeros when empty)."""
    if len(values) == 0:
        return {"count": 0, "total": 0, "mean": 0.0, "min": 0, "max": 0, **{f"p{p}": 0.0 for p in PERCENTILES}}
    summary: dict[str, float | int] = {
        "count": len(values), "total": int(values.sum()), "mean": round(float(values.mean()), 3),
        "min": int(values.min()), "max": int(values.max()),
    }
    for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        summary[f"p{p}"] = round(float(v), 3)
    return summary


def power_of_two_edges(largest: int) -> list[int]:
    """Histogram edges 0, 1, 2, 4, ... past ``largest``: lengths span several orders of magnitude."""
    edges = [0, 1]
    while edges[-1] <= largest:
        edges.append(edges[-1] * 2)
    return edges


def batches(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def source_name(record: dict) -> tuple[str, str]:
    """``(file name, format)`` of a record's source; ``"unknown"`` for what it does not say."""
    source = record.get("source") or {}
    file = source.get("file")
    return (Path(file).name if file else "unknown"), str(source.get("format") or "unknown")


@dataclass
class Tally:
    """What the one pass keeps: small per-record and per-message columns, and counters."""

    sources: dict[tuple[str, str], int] = field(default_factory=dict)  # (file, format) -> group number
    languages: dict[str, int] = field(default_factory=dict)  # language -> group number
    record_source: list[int] = field(default_factory=list)
    record_lang: list[int] = field(default_factory=list)
    record_turns: list[int] = field(default_factory=list)
    lengths: dict[str, list[int]] = field(default_factory=lambda: {"user": [], "assistant": []})
    owners: dict[str, list[int]] = field(default_factory=lambda: {"user": [], "assistant": []})  # record index
    roles: Counter[str] = field(default_factory=Counter)
    with_system: int = 0
    verbs: Counter[str] = field(default_factory=Counter)
    objects: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    zh_words: Counter[str] = field(default_factory=Counter)

    def add(self, record: dict, lang: str, texts: dict[str, list[str]]) -> None:
        """Count one record; its user and assistant texts go to ``texts`` to be tokenised by the batch."""
        index = len(self.record_turns)
        messages = record.get("messages") or []
        self.record_source.append(self.sources.setdefault(source_name(record), len(self.sources)))
        self.record_lang.append(self.languages.setdefault(lang, len(self.languages)))
        self.record_turns.append(sum(m.get("role") != "system" for m in messages))
        self.with_system += any(m.get("role") == "system" for m in messages)
        for m in messages:
            role = m.get("role")
            self.roles[role] += 1
            if role in texts:
                texts[role].append(m.get("content") or "")
                self.owners[role].append(index)
        if lang == "en":
            verb, obj = verb_object(first_user(record))
            if verb:
                self.verbs[verb] += 1
                self.objects[verb][obj or "(no object)"] += 1
        elif lang == "zh" and (word := first_word_zh(first_user(record))):
            self.zh_words[word] += 1


def collect(
    records: Iterable[dict],
    count_tokens: TokenCounter,
    *,
    sample_size: int = 8,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """Statistics of ``records`` and a random sample of them (reservoir sampling: one pass, any size)."""
    identifier = LanguageIdentifier()
    rng = random.Random(seed)
    sample: list[dict] = []
    tally = Tally()
    seen = 0
    for batch in batches(records, BATCH):
        texts: dict[str, list[str]] = {"user": [], "assistant": []}
        for record in batch:
            seen += 1
            if len(sample) < sample_size:
                sample.append(record)
            elif (slot := rng.randrange(seen)) < sample_size:
                sample[slot] = record
            tally.add(record, record_language(record, identifier), texts)
        for role, role_texts in texts.items():  # a tokenizer is much faster on a batch than text by text
            tally.lengths[role].extend(count_tokens(role_texts))
    return summarise(tally), sample


def summarise(tally: Tally) -> dict:
    """The stats dict (see the module docstring and docs/report.md) from a finished tally."""
    turns = np.array(tally.record_turns, dtype=np.int64)
    lengths = {role: np.array(values, dtype=np.int64) for role, values in tally.lengths.items()}
    owners = {role: np.array(values, dtype=np.int64) for role, values in tally.owners.items()}

    def group_rows(names: dict, group_of: np.ndarray) -> list[tuple]:
        """Per group: records, share, mean turns and the median user/assistant message length."""
        rows = []
        for name, g in names.items():
            in_group = group_of == g
            row = {"records": int(in_group.sum()), "share": round(float(in_group.mean()), 4),
                   "turns_mean": round(float(turns[in_group].mean()), 3)}
            for role in ("user", "assistant"):
                mine = lengths[role][group_of[owners[role]] == g] if len(owners[role]) else []
                row[f"{role}_tokens_median"] = round(float(np.median(mine)), 3) if len(mine) else 0.0
            rows.append((name, row))
        return sorted(rows, key=lambda item: -item[1]["records"])

    source_of = np.array(tally.record_source, dtype=np.int64)
    lang_of = np.array(tally.record_lang, dtype=np.int64)
    edges = power_of_two_edges(max([int(a.max()) for a in lengths.values() if len(a)], default=0))
    return {
        "overview": {
            "records": len(turns),
            "messages": sum(tally.roles.values()),
            "turns": int(turns.sum()),
            "user_turns": tally.roles["user"], "assistant_turns": tally.roles["assistant"],
            "tool_turns": tally.roles["tool"],
            "records_with_system_prompt": tally.with_system,
            "user_tokens": int(lengths["user"].sum()),
            "assistant_tokens": int(lengths["assistant"].sum()),
            "sources": len(tally.sources), "languages": len(tally.languages),
        },
        "sources": [{"file": file, "format": fmt, **row}
                    for (file, fmt), row in group_rows(tally.sources, source_of)],
        "languages": [{"lang": lang, **row} for lang, row in group_rows(tally.languages, lang_of)],
        "turns": {
            "summary": distribution(turns),
            "counts": {str(k): v for k, v in sorted(Counter(turns.tolist()).items())},
        },
        "tokens": {
            "user": distribution(lengths["user"]),
            "assistant": distribution(lengths["assistant"]),
            "histogram": {"edges": edges, **{role: np.histogram(a, bins=edges)[0].tolist()
                                             for role, a in lengths.items()}},
        },
        "instructions": {
            "en": {
                "records": int((lang_of == tally.languages["en"]).sum()) if "en" in tally.languages else 0,
                "with_verb": sum(tally.verbs.values()),
                "distinct_verbs": len(tally.verbs),
                "top_verbs": [{"verb": verb, "count": n,
                               "objects": [{"object": o, "count": k}
                                           for o, k in tally.objects[verb].most_common(TOP_OBJECTS)]}
                              for verb, n in tally.verbs.most_common(TOP_VERBS)],
            },
            "zh": {
                "records": int((lang_of == tally.languages["zh"]).sum()) if "zh" in tally.languages else 0,
                "top_first_words": [{"word": w, "count": n} for w, n in tally.zh_words.most_common(TOP_ZH_WORDS)],
            },
        },
    }


def reject_summary(
    rejects: Iterable[dict], *, per_reason: int = 2, limit: int = 24, seed: int = 0
) -> tuple[dict, list[dict]]:
    """Counts of rejects by stage, operator and reason (in order of first appearance), and a sample of them.

    The sample holds up to ``per_reason`` rejects of each (operator, reason), reservoir-sampled.
    """
    rng = random.Random(seed)
    counts: Counter[tuple[str, str, str]] = Counter()
    picked: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for reject in rejects:
        key = (str(reject.get("stage", "")), str(reject.get("operator", "")), str(reject.get("reason", "")))
        counts[key] += 1
        if len(picked[key]) < per_reason:
            picked[key].append(reject)
        elif (slot := rng.randrange(counts[key])) < per_reason:
            picked[key][slot] = reject
    summary = {
        "total": sum(counts.values()),
        "by_reason": [{"stage": s, "operator": o, "reason": r, "count": n} for (s, o, r), n in counts.items()],
    }
    sample = [reject for group in picked.values() for reject in group][:limit]
    return summary, sample


def curation_funnel(curate_stats: dict | None, rejects: dict | None, kept: int) -> dict | None:
    """Records left after each operator: from the curation stats.json when given, else rebuilt from rejects.

    Without stats.json the input is taken as kept + rejected and each operator as one step in the order
    its first reject appears; what operators modified is then unknown.
    """
    if curate_stats:
        steps = [{key: op.get(key) for key in ("name", "op", "in", "out", "dropped", "modified", "reasons", "notes")}
                 for op in curate_stats.get("operators", [])]
        return {"from": "stats", "input": curate_stats.get("input", {}).get("records"),
                "output": curate_stats.get("output", {}).get("records"), "steps": steps,
                "seconds": curate_stats.get("seconds"), "engine": curate_stats.get("engine")}
    if not rejects or not rejects["total"]:
        return None
    by_operator: dict[str, dict[str, int]] = {}
    for row in rejects["by_reason"]:
        reasons = by_operator.setdefault(row["operator"], {})
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["count"]
    steps: list[dict[str, Any]] = []
    remaining = kept + rejects["total"]
    for operator, reasons in by_operator.items():
        dropped = sum(reasons.values())
        steps.append({"name": operator, "op": operator, "in": remaining, "out": remaining - dropped,
                      "dropped": dropped, "modified": None, "reasons": reasons})
        remaining -= dropped
    return {"from": "rejects", "input": kept + rejects["total"], "output": kept, "steps": steps,
            "seconds": None, "engine": None}
