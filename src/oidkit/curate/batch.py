"""One operator over one batch with full accounting, and the read's accounting: what both engines share.

Every record that enters leaves either kept (possibly modified) or as a reject naming the step, the reason
code and the measured value; the :class:`Tally` counts both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oidkit.curate.base import Decision, Filter, Mapper, Operator
from oidkit.io import write_jsonl
from oidkit.records import conversation_problems, make_reject


@dataclass
class Tally:
    """What one step did: counts in and out, reasons, per-type extras (PII per type, fixes per kind)."""

    seen: int = 0
    kept: int = 0
    modified: int = 0
    reasons: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.seen += other.seen
        self.kept += other.kept
        self.modified += other.modified
        self.reasons.update(other.reasons)
        self.extra.update(other.extra)

    def to_stats(self, name: str, op: str, seconds: float) -> dict:
        return {"name": name, "op": op, "in": self.seen, "out": self.kept, "dropped": self.seen - self.kept,
                "modified": self.modified, "seconds": round(seconds, 3), "reasons": dict(self.reasons),
                "extra": dict(self.extra)}


def reject_of(record: dict, step: str, reason: str, value: Any, detail: str = "",
              duplicate_of: str | None = None) -> dict:
    extra = {"duplicate_of": duplicate_of} if duplicate_of is not None else {}
    return make_reject(record, stage="curate", operator=step, reason=reason, value=value, detail=detail, **extra)


def broken_by_rewrite(before: dict, after: dict) -> tuple[str, str] | None:
    """The first conversation problem ``after`` has that ``before`` did not, or ``None``."""
    known = {code for code, _ in conversation_problems(before["messages"])}
    for code, detail in conversation_problems(after["messages"]):
        if code not in known:
            return code, detail
    return None


def filter_decision(op: Filter, keep: bool, reason: str, value: Any) -> Decision | None:
    """A filter's verdict as a global operator's decision: drop, stamp ``meta[op.stamp]``, or keep as is."""
    if not keep:
        return Decision(reason, value, op.reasons.get(reason, ""))
    return Decision(meta={op.stamp: value}) if op.stamp and value is not None else None


def run_batch(op: Operator, step: str, batch: list[dict]) -> tuple[list[dict], list[dict], Tally]:
    """Apply a filter or mapper to one batch: (kept records, rejects, tally). Used by every engine."""
    if isinstance(op, Filter):
        return apply_decisions(step, batch, [filter_decision(op, *verdict) for verdict in op.keep_batch(batch)])
    if not isinstance(op, Mapper):
        raise TypeError(f"{type(op).__name__} is neither a Filter nor a Mapper")
    tally = Tally(seen=len(batch))
    kept, rejects = [], []
    for record in batch:
        new, counts = op.map(record)
        tally.extra.update(counts)
        if new is not record:
            # A rewrite must not break the conversation (e.g. HTML stripping emptying an answer):
            # such a record leaves as a reject, in its original form, instead of passing on broken.
            introduced = broken_by_rewrite(record, new)
            if introduced:
                code, detail = introduced
                rejects.append(reject_of(record, step, code, detail, f"{op.name} would leave: {detail}"))
                tally.reasons[code] += 1
                continue
            tally.modified += 1
        kept.append(new)
    tally.kept = len(kept)
    return kept, rejects, tally


def apply_decisions(step: str, batch: list[dict], decisions: list[Decision | None]) -> tuple[list, list, Tally]:
    """Apply decisions (aligned with ``batch``) of a global operator or a filter: drop, annotate ``meta`` or keep."""
    tally = Tally(seen=len(batch))
    kept, rejects = [], []
    for record, decision in zip(batch, decisions, strict=True):
        if decision is None:
            kept.append(record)
        elif decision.reason is not None:
            rejects.append(reject_of(record, step, decision.reason, decision.value, decision.detail,
                                     decision.duplicate_of))
            tally.reasons[decision.reason] += 1
        else:
            kept.append({**record, "meta": {**record.get("meta", {}), **decision.meta}})
            tally.modified += 1
    tally.kept = len(kept)
    return kept, rejects, tally


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def read_accounting(out: Path, ingest_rejects: list[dict], rows: int, rejected: int, records: int) -> dict:
    """Write the rows rejected on read to ``OUT/ingest_rejects.jsonl``; return the read's accounting."""
    if ingest_rejects:
        write_jsonl(out / "ingest_rejects.jsonl", ingest_rejects)
    else:  # a file left by an earlier run on other input would be counted with this one
        (out / "ingest_rejects.jsonl").unlink(missing_ok=True)
    return {"rows": rows, "rejected_on_read": rejected, "records": records,
            "ingest_rejects": str(out / "ingest_rejects.jsonl") if ingest_rejects else None}
