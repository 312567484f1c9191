"""The in-memory index the review app pages, filters and searches over.

Everything is loaded once at start: the items (kept records and, with ``--rejects``, rejected ones), one
lowercase search text per item and numpy columns for the numeric filters, so a page of a 20k-record set is
a few vectorised comparisons and one substring scan, well under the 300 ms budget.

Each item has a *key* that the review log refers to: the record id (``id#2``, ``id#3`` ... when a file
repeats an id) for data records and ``reject:N`` (the N-th row of the rejects file) for rejects. Reading
the same files again gives the same keys, which is how ``oid review export`` applies the log.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oidkit.io import read_jsonl, read_records
from oidkit.records import first_user
from oidkit.review.languages import identify_languages

PREVIEW_CHARS = 160


@dataclass
class Item:
    """One reviewable thing: a kept record, or a reject (whose ``record`` is ``None`` when it is a raw row)."""

    key: str
    kind: str  # "data" or "reject"
    record: dict | None
    reject: dict | None = None  # the reject row without its record: stage, operator, reason, detail, value


def is_record(value: Any) -> bool:
    """True for a canonical record (ingest rejects carry the raw source row instead)."""
    return isinstance(value, dict) and isinstance(value.get("messages"), list)


def load_items(data: str | Path, rejects: str | Path | None = None, *, salvage: bool = False,
               on_unreadable: Callable[[dict], None] | None = None) -> list[Item]:
    """Items in a stable order: the data records, then the rejects file's rows.

    Rows of ``data`` that do not make a valid record go to ``on_unreadable`` (ingest reject dicts); they are
    not items: ``oid convert`` writes them to a rejects file, which ``--rejects`` reviews.
    """
    items: list[Item] = []
    seen: dict[str, int] = {}
    for record in read_records(data, salvage=salvage, on_reject=on_unreadable or (lambda reject: None)):
        record_id = str(record["id"])
        seen[record_id] = seen.get(record_id, 0) + 1
        key = record_id if seen[record_id] == 1 else f"{record_id}#{seen[record_id]}"
        items.append(Item(key, "data", record))
    if rejects:
        for n, row in enumerate(read_jsonl(rejects)):
            record = row.get("record")
            info = {k: v for k, v in row.items() if k != "record"}
            if not is_record(record):
                info["raw"] = record
            items.append(Item(f"reject:{n}", "reject", record if is_record(record) else None, info))
    return items


def search_text(item: Item) -> str:
    """Lowercase text the full-text search scans: every turn, plus a reject's reason and detail."""
    parts = [str(m.get("content") or "") for m in item.record["messages"]] if item.record else []
    if item.reject:
        parts += [str(item.reject.get(k) or "") for k in ("reason", "detail", "raw")]
    return "\n".join(parts).lower()


def score_of(record: dict | None) -> float:
    """``meta.score`` (from ``oid annotate``) as a float, NaN when absent or not a number."""
    value = (record or {}).get("meta", {}).get("score")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")


def codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Category column as integer codes plus the sorted names, so equality filters are vectorised."""
    names = sorted(set(values))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[v] for v in values], dtype=np.int32), names


@dataclass
class Query:
    """What the list shows; every field is optional."""

    view: str = "data"
    q: str = ""
    source: str | None = None
    lang: str | None = None
    operator: str | None = None
    reason: str | None = None
    min_turns: int | None = None
    max_turns: int | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    min_score: float | None = None
    max_score: float | None = None
    # label and status filters, resolved against the review log by the caller: keys to keep only / to leave out
    only_keys: set[str] | None = None
    except_keys: set[str] | None = None
    sample_only: bool = False


@dataclass
class Index:
    """Items plus the columns that filters compare, built once."""

    items: list[Item]
    sample_size: int | None = None
    seed: int = 0
    identify: bool = True  # identify the language of records without meta.lang
    texts: list[str] = field(init=False)
    by_key: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        items = self.items
        self.texts = [search_text(item) for item in items]
        self.by_key = {item.key: i for i, item in enumerate(items)}
        self.data_ids = {str(item.record["id"]): item.key for item in items if item.kind == "data"}
        self.is_reject = np.array([item.kind == "reject" for item in items], dtype=bool)
        self.turns = np.array([sum(m.get("role") != "system" for m in item.record["messages"]) if item.record else 0
                               for item in items], dtype=np.int32)
        self.chars = np.array([len(t) for t in self.texts], dtype=np.int64)
        self.scores = np.array([score_of(item.record) for item in items], dtype=np.float64)
        self.source, self.sources = codes([source_label(item) for item in items])
        self.operator, self.operators = codes([str((item.reject or {}).get("operator") or "") for item in items])
        self.reason, self.reasons = codes([str((item.reject or {}).get("reason") or "") for item in items])
        self.in_sample = self._sample()
        self.lang: np.ndarray | None = None
        self.langs: list[str] = []
        self.languages_done = threading.Event()
        self.last_search: tuple[tuple[str, str], np.ndarray] | None = None

    def _sample(self) -> np.ndarray:
        """A seeded random sample of ``sample_size`` data records and as many rejects, the same for everyone."""
        mask = np.zeros(len(self.items), dtype=bool)
        if self.sample_size is None:
            return ~mask
        rng = random.Random(self.seed)
        for kind_mask in (~self.is_reject, self.is_reject):
            candidates = np.flatnonzero(kind_mask).tolist()
            mask[rng.sample(candidates, min(self.sample_size, len(candidates)))] = True
        return mask

    def index_languages(self) -> None:
        """Language of every item: ``meta.lang`` when set, else py3langid in a child process (see
        :mod:`oidkit.review.languages`); run in a thread at start, language filters wait for it."""
        values = [(item.record or {}).get("meta", {}).get("lang") or None for item in self.items]
        todo = [i for i, value in enumerate(values) if value is None and self.items[i].record]
        try:
            if todo and self.identify:
                guessed = identify_languages([self.items[i].record for i in todo])
                for i, language in zip(todo, guessed, strict=True):
                    values[i] = language
        finally:  # a failed child leaves "unknown" rather than language filters waiting forever
            self.lang, self.langs = codes([str(value or "unknown") for value in values])
            self.languages_done.set()

    def select(self, query: Query) -> np.ndarray:
        """Positions of the items matching ``query``, in file order."""
        mask = self.is_reject if query.view == "reject" else ~self.is_reject
        if query.sample_only:
            mask = mask & self.in_sample
        for column, low, high in ((self.turns, query.min_turns, query.max_turns),
                                  (self.chars, query.min_chars, query.max_chars),
                                  (self.scores, query.min_score, query.max_score)):
            if low is not None:
                mask = mask & (column >= low)
            if high is not None:
                mask = mask & (column <= high)
        for column, names, wanted in ((self.source, self.sources, query.source),
                                      (self.operator, self.operators, query.operator),
                                      (self.reason, self.reasons, query.reason)):
            if wanted:
                mask = mask & (column == (names.index(wanted) if wanted in names else -1))
        if query.lang:
            self.languages_done.wait()
            mask = mask & (self.lang == (self.langs.index(query.lang) if query.lang in self.langs else -1))
        if query.only_keys is not None:
            mask = mask & self.key_mask(query.only_keys)
        if query.except_keys:
            mask = mask & ~self.key_mask(query.except_keys)
        if query.q.strip():
            mask = mask & self.search(query.q.strip().lower(), query.view)
        return np.flatnonzero(mask)

    def key_mask(self, keys: set[str]) -> np.ndarray:
        mask = np.zeros(len(self.items), dtype=bool)
        mask[[self.by_key[k] for k in keys if k in self.by_key]] = True
        return mask

    def search(self, needle: str, view: str) -> np.ndarray:
        """Mask of the view's items whose text contains ``needle``, cached so paging through hits is instant."""
        if self.last_search and self.last_search[0] == (needle, view):
            return self.last_search[1]
        hits = np.zeros(len(self.items), dtype=bool)
        candidates = np.flatnonzero(self.is_reject if view == "reject" else ~self.is_reject)
        texts = self.texts
        hits[candidates] = np.fromiter((needle in texts[i] for i in candidates.tolist()), dtype=bool,
                                       count=len(candidates))
        self.last_search = ((needle, view), hits)
        return hits

    def duplicate_of(self, item: Item) -> str | None:
        """Key of the kept record a reject duplicated: ``duplicate_of``, else a ``value`` or word of ``detail``."""
        info = item.reject or {}
        words = str(info.get("detail") or "").split()
        candidates: Iterable[Any] = [info.get("duplicate_of"), info.get("value"), *words]
        for candidate in candidates:
            name = candidate.strip(".,;:()'\"") if isinstance(candidate, str) else None
            if name in self.data_ids:
                return self.data_ids[name]
        return None

    def preview(self, position: int) -> dict:
        """The list row of an item: first user turn cut short, sizes, score, source, reject reason."""
        item = self.items[position]
        row = {"key": item.key, "kind": item.kind, "turns": int(self.turns[position]),
               "chars": int(self.chars[position]), "source": self.sources[self.source[position]],
               "preview": first_user(item.record)[:PREVIEW_CHARS] if item.record
               else str((item.reject or {}).get("raw"))[:PREVIEW_CHARS]}
        if not np.isnan(self.scores[position]):
            row["score"] = float(self.scores[position])
        if self.lang is not None:
            row["lang"] = self.langs[self.lang[position]]
        if item.reject:
            row["operator"], row["reason"] = item.reject.get("operator"), item.reject.get("reason")
        return row


def source_label(item: Item) -> str:
    """``file name (format)`` of where a record came from; what the source filter offers."""
    source = (item.record or {}).get("source") or (item.reject or {}).get("source") or {}
    name = Path(str(source.get("file") or "unknown")).name
    return f"{name} ({source['format']})" if source.get("format") else name
