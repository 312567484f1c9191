"""``oid review export``: the reviewed dataset as canonical records, ready for ``oid train``.

Edits are applied; a record whose latest decision (by anyone) is *reject* is left out; a filter reject
that a reviewer *accepted* comes back in. Every written record carries ``meta.review``: its status
(accept / unreviewed), the decisions per annotator, the union of labels, and who edited it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from oidkit.errors import InputError
from oidkit.io import write_records
from oidkit.io.outputs import refuse_overwriting_inputs
from oidkit.review.index import Item, load_items
from oidkit.review.log import ReviewLog, default_log_path


def reviewed_records(items: list[Item], log: ReviewLog, *, only_accepted: bool = False) -> Iterator[dict]:
    """Records to keep, with edits applied and ``meta.review`` set."""
    for item in items:
        if item.record is None:
            continue
        final = log.final_decision(item.key)
        decision = final["decision"] if final else None
        if decision == "reject" or (decision is None and (only_accepted or item.kind == "reject")):
            continue
        review = log.review_meta(item.key)
        if item.kind == "reject":
            review["restored_from"] = {k: item.reject.get(k) for k in ("stage", "operator", "reason", "value")}
        messages = log.edits[item.key]["messages"] if item.key in log.edits else item.record["messages"]
        yield {**item.record, "messages": messages, "meta": {**item.record.get("meta", {}), "review": review}}


def export_reviewed(data: str | Path, out: str | Path, *, log_path: str | Path | None = None,
                    rejects: str | Path | None = None, only_accepted: bool = False, salvage: bool = False) -> dict:
    """Write the reviewed dataset to ``out`` (format from its suffix); returns counts of what went where."""
    log_path = Path(log_path or default_log_path(data))
    if not log_path.exists():
        raise InputError("review log not found", file=str(log_path),
                         hint="give the log the review app wrote with --log (it prints its path at start)")
    refuse_overwriting_inputs([out], [data, log_path, *filter(None, [rejects])])
    items = load_items(data, rejects, salvage=salvage)
    log = ReviewLog(log_path)
    try:
        records = list(reviewed_records(items, log, only_accepted=only_accepted))
    finally:
        log.close()
    outputs = write_records(records, out)
    statuses = [log.final_decision(item.key) for item in items]
    return {"items": len(items), "written": len(records), "outputs": [str(p) for p in outputs],
            "rejected": sum(1 for s in statuses if s and s["decision"] == "reject"),
            "restored": sum(1 for r in records if "restored_from" in r["meta"]["review"]),
            "edited": sum(1 for r in records if "edited_by" in r["meta"]["review"])}
