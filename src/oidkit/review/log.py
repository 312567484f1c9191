"""The append-only review log: every decision is one fsynced JSONL line, the state is its replay.

The input files are never rewritten. A line is written and fsynced before the HTTP response that
acknowledges it, so killing the server loses nothing acknowledged; a line cut short by a kill is skipped
on replay. Each line carries ``seq`` (its position in the log), ``time``, ``annotator``, ``key`` (the item,
see :mod:`oidkit.review.index`) and one action:

- ``decision``: ``decision`` = ``accept`` | ``reject`` | ``null`` (cleared), with an optional ``reason``;
- ``labels``: ``labels`` = the annotator's full label list for the item;
- ``edit``: ``messages`` = the whole edited conversation, ``base`` = the version it was edited from;
- ``vote`` (``oid arena``): ``models`` = the two models in the order shown (A, B), ``choice`` = ``A`` | ``B`` |
  ``tie`` | ``both_bad``, ``winner`` = the chosen model's name (or ``tie`` / ``both_bad``), ``prompt`` and
  ``answers`` (what was shown), ``note``. An annotator's latest vote on a key counts.

A record's *version* is the ``seq`` of its latest edit (0 = as in the file). An edit whose ``base`` is
not the current version was made on a stale copy and is refused as an :class:`EditConflict`.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

DECISIONS = ("accept", "reject", None)
VOTES = ("A", "B", "tie", "both_bad")


class EditConflict(Exception):
    """An edit based on an older version of the record than the current one."""

    def __init__(self, current: dict):
        super().__init__(f"record was edited (version {current['seq']}) by {current['annotator']}")
        self.current = current


def default_log_path(data: str | Path) -> Path:
    """``kept.jsonl`` -> ``kept.review.jsonl`` beside it; a folder gets ``review.jsonl`` inside it."""
    data = Path(data)
    if data.is_dir():
        return data / "review.jsonl"
    name = data.name
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".parquet", ".csv", ".arrow"):
        name = name.removesuffix(suffix)
    return data.with_name(f"{name}.review.jsonl")


class ReviewLog:
    """The log file opened for appending, and the state its lines add up to."""

    def __init__(self, path: str | Path, *, read_only: bool = False):
        """Replay ``path``; ``read_only`` (reports) never writes to it, else it is opened for appending."""
        self.path = Path(path)
        self.lock = threading.Lock()
        self.seq = 0
        self.decisions: dict[str, dict[str, dict]] = {}  # key -> annotator -> decision event
        self.labels: dict[str, dict[str, list[str]]] = {}  # key -> annotator -> labels
        self.edits: dict[str, dict] = {}  # key -> latest edit event
        self.votes: dict[str, dict[str, dict]] = {}  # key -> annotator -> latest vote event
        self.skipped_lines = 0
        if read_only:
            self._replay(repair=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._replay()
        self.file = open(self.path, "ab")  # noqa: SIM115 -- open for the app's lifetime, closed by close()

    def _replay(self, repair: bool = True) -> None:
        raw = self.path.read_bytes()
        for line in raw.splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:  # the last line of a killed write; never acknowledged
                self.skipped_lines += 1
                continue
            self._apply(event)
        if repair and raw and not raw.endswith(b"\n"):  # keep a cut line apart from the next one we append
            with open(self.path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())

    def _apply(self, event: dict) -> None:
        self.seq = max(self.seq, int(event["seq"]))
        key, annotator = event["key"], event["annotator"]
        if event["action"] == "decision":
            self.decisions.setdefault(key, {})[annotator] = event
        elif event["action"] == "labels":
            self.labels.setdefault(key, {})[annotator] = list(event["labels"])
        elif event["action"] == "edit":
            self.edits[key] = event
        elif event["action"] == "vote":
            self.votes.setdefault(key, {})[annotator] = event

    def _append(self, event: dict) -> dict:
        """Write, flush and fsync one event, then apply it; the caller holds the lock."""
        event = {"seq": self.seq + 1, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **event}
        self.file.write(orjson.dumps(event) + b"\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        self._apply(event)
        return event

    def version(self, key: str) -> int:
        """``seq`` of the latest edit of ``key``; 0 when it is as in the input file."""
        return int(self.edits[key]["seq"]) if key in self.edits else 0

    def decide(self, key: str, annotator: str, decision: str | None, reason: str = "") -> dict:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be accept, reject or null, got {decision!r}")
        with self.lock:
            return self._append({"annotator": annotator, "key": key, "action": "decision", "decision": decision,
                                 "reason": reason})

    def set_labels(self, key: str, annotator: str, labels: list[str]) -> dict:
        with self.lock:
            return self._append({"annotator": annotator, "key": key, "action": "labels",
                                 "labels": sorted(set(labels))})

    def edit(self, key: str, annotator: str, base: int, messages: list[dict]) -> dict:
        """Append an edit made on version ``base``; raise :class:`EditConflict` if someone saved in between."""
        with self.lock:
            if base != self.version(key):
                raise EditConflict(self.edits[key])
            return self._append({"annotator": annotator, "key": key, "action": "edit", "base": base,
                                 "messages": messages})

    def vote(self, key: str, annotator: str, *, models: list[str], choice: str, prompt: list[dict],
             answers: list[str], note: str = "") -> dict:
        """Append an arena vote: ``choice`` among the two ``models`` shown as A and B."""
        if choice not in VOTES:
            raise ValueError(f"vote must be one of {', '.join(VOTES)}, got {choice!r}")
        winner = {"A": models[0], "B": models[1]}.get(choice, choice)
        with self.lock:
            return self._append({"annotator": annotator, "key": key, "action": "vote", "models": models,
                                 "choice": choice, "winner": winner, "prompt": prompt, "answers": answers,
                                 "note": note})

    def final_decision(self, key: str) -> dict | None:
        """The latest decision anyone made on ``key`` (``None`` when never decided or cleared)."""
        events = self.decisions.get(key, {}).values()
        latest = max(events, key=lambda e: e["seq"], default=None)
        return latest if latest and latest["decision"] else None

    def annotators(self) -> list[str]:
        names = {a for per_key in (*self.decisions.values(), *self.labels.values()) for a in per_key}
        names |= {e["annotator"] for e in self.edits.values()}
        names |= {a for per_key in self.votes.values() for a in per_key}
        return sorted(names)

    def review_meta(self, key: str) -> dict[str, Any]:
        """What ``meta.review`` of an exported record says about ``key``."""
        final = self.final_decision(key)
        meta: dict[str, Any] = {"status": final["decision"] if final else "unreviewed",
                                "decisions": {a: {"decision": e["decision"], "reason": e.get("reason", ""),
                                                  "time": e["time"]}
                                              for a, e in self.decisions.get(key, {}).items() if e["decision"]},
                                "labels": sorted({label for labels in self.labels.get(key, {}).values()
                                                  for label in labels})}
        if key in self.edits:
            meta["edited_by"], meta["version"] = self.edits[key]["annotator"], self.edits[key]["seq"]
        return meta

    def close(self) -> None:
        self.file.close()
