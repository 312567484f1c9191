"""Repairs of conversations that datasets' own tooling broke, applied while reading, before the checks.

ShareGPT's "split" files cut long conversations into chunks ``ID_0``, ``ID_1``, ...; a chunk often starts
with the assistant turn that answers the last question of the chunk before. Three policies, each recorded
on the record in ``meta["repairs"]`` (what was done, with anything removed kept there) and counted:

- ``rejoin``: the chunks of one conversation found in the input are joined back in order. A run of
  consecutive chunk numbers is joined only when it shows it was split (one of its later chunks starts
  with an assistant turn): ids like ``identity_0``, ``identity_1`` of unrelated records look the same.
  The reader streams, so chunks are gathered in a window of ``REJOIN_WINDOW`` records; chunks further
  apart than that stay separate (the real ShareGPT file keeps them adjacent).
- ``drop_leading_assistant``: assistant turns before the first user turn are dropped (kept in meta).
- ``merge_consecutive``: consecutive user (or assistant) turns are joined, a blank line between.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from typing import Any

from oidkit.io.formats import LAYOUT

REPAIRS = ("rejoin", "drop_leading_assistant", "merge_consecutive")
REJOIN_WINDOW = 1000
CHUNK_ID = re.compile(r"^(?P<base>.+)_(?P<number>\d+)$")


def parse_repairs(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Policies from ``"rejoin,merge_consecutive"`` or a list; ``ValueError`` naming an unknown one."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in REPAIRS]
    if unknown:
        raise ValueError(f"unknown repair {', '.join(unknown)}; choose from {', '.join(REPAIRS)}")
    return tuple(name for name in REPAIRS if name in names)


def repair_records(items: Iterable[tuple[dict, Any]], policies: Iterable[str], counts: Counter
                   ) -> Iterator[tuple[dict, Any]]:
    """``(record, original)`` pairs repaired by ``policies``; ``counts[policy]`` counts repaired records (kept
    or then rejected) and ``counts["joined_rows"]`` the chunks joined onto an earlier one (they are no record
    of their own). A repaired record is its own ``original``: its reject carries ``meta.repairs``."""
    policies = set(policies)
    stream = _rejoin(items, counts) if "rejoin" in policies else iter(items)
    for record, original in stream:
        repairs = []
        if "drop_leading_assistant" in policies:
            repairs += _drop_leading_assistant(record)
        if "merge_consecutive" in policies:
            repairs += _merge_consecutive(record)
        for repair in repairs:
            counts[repair["repair"]] += 1
        if repairs:
            record["meta"] = {**record.get("meta", {}), "repairs": [*record.get("meta", {}).get("repairs", []),
                                                                     *repairs]}
            _forget_turn_layout(record)
            original = record  # a reject shows the record its problems were found in, repairs and all
        yield record, original


def _rejoin(items: Iterable[tuple[dict, Any]], counts: Counter) -> Iterator[tuple[dict, Any]]:
    """Chunked conversations joined; records leave in input order (a conversation where its first chunk was).

    ``pending`` holds, in input order, finished records and open chunk groups; a group is finished once no
    chunk of it came for ``REJOIN_WINDOW`` records, so memory stays bounded by the window."""
    pending: deque[list] = deque()  # [record, original] or ["group", base, {number: (record, original)}, seen]
    groups: dict[str, list] = {}
    for seen, (record, original) in enumerate(items):
        match = CHUNK_ID.match(str(record.get("id", "")))
        group = groups.get(match["base"]) if match else None
        if match and group is not None and int(match["number"]) not in group[2]:
            group[2][int(match["number"])], group[3] = (record, original), seen
        elif match:
            groups[match["base"]] = ["group", match["base"], {int(match["number"]): (record, original)}, seen]
            pending.append(groups[match["base"]])
        else:
            pending.append([record, original])
        while pending and (pending[0][0] != "group" or seen - pending[0][3] >= REJOIN_WINDOW):
            yield from _finish(pending.popleft(), groups, counts)
    while pending:
        yield from _finish(pending.popleft(), groups, counts)


def _finish(item: list, groups: dict, counts: Counter) -> Iterator[tuple[dict, Any]]:
    if item[0] != "group":
        yield item[0], item[1]
        return
    _, base, chunks, _ = item
    if groups.get(base) is item:
        del groups[base]
    run: list[tuple[dict, Any]] = []
    for number in sorted(chunks):
        if run and number - 1 not in chunks:
            yield from _join(run, counts)
            run = []
        run.append(chunks[number])
    yield from _join(run, counts)


def _join(run: list[tuple[dict, Any]], counts: Counter) -> Iterator[tuple[dict, Any]]:
    """One record of a run of consecutive chunks, when a later chunk shows the conversation was cut."""
    if len(run) == 1 or not any(_starts_with_assistant(record["messages"]) for record, _ in run[1:]):
        yield from run
        return
    records = [record for record, _ in run]
    first = records[0]
    joined = {**first, "messages": [m for record in records for m in record["messages"]]}
    media: dict[str, list] = {}
    for record in records:
        for kind, values in (record.get("media") or {}).items():
            media[kind] = [*media.get(kind, []), *values]
    if media:
        joined["media"] = media
    later_meta = [{k: v for k, v in r.get("meta", {}).items() if k != LAYOUT} for r in records[1:]]
    repair = {"repair": "rejoin", "ids": [r["id"] for r in records], "sources": [r.get("source") for r in records]}
    if any(later_meta):
        repair["meta"] = later_meta
    joined["meta"] = {**first.get("meta", {}), "repairs": [repair]}
    _forget_turn_layout(joined)
    counts["rejoin"] += 1
    counts["joined_rows"] += len(records) - 1
    yield joined, joined


def _starts_with_assistant(messages: list) -> bool:
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
    return bool(turns) and turns[0].get("role") == "assistant"


def _drop_leading_assistant(record: dict) -> list[dict]:
    messages = record["messages"]
    start = 1 if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system" else 0
    end = start
    while end < len(messages) and isinstance(messages[end], dict) and messages[end].get("role") == "assistant":
        end += 1
    if end == start or not any(isinstance(m, dict) and m.get("role") == "user" for m in messages[end:]):
        return []  # nothing to drop, or nothing would be left to learn from: the checks reject it as it is
    record["messages"] = messages[:start] + messages[end:]
    return [{"repair": "drop_leading_assistant", "turns": messages[start:end]}]


def _mergeable(previous: dict, message: dict) -> bool:
    return (isinstance(previous, dict) and isinstance(message, dict) and message.get("role") in ("user", "assistant")
            and previous.get("role") == message.get("role")
            and all(isinstance(m.get("content"), str) and not m.get("tool_calls") for m in (previous, message))
            and not message.get("extra") and message.get("name") == previous.get("name"))


def _merge_consecutive(record: dict) -> list[dict]:
    merged: list = []
    at = []
    for message in record["messages"]:
        if merged and _mergeable(merged[-1], message):
            previous = merged[-1] = dict(merged[-1])
            previous["content"] = f"{previous['content']}\n\n{message['content']}"
            if message.get("reasoning"):
                previous["reasoning"] = "\n\n".join(filter(None, (previous.get("reasoning"), message["reasoning"])))
            if not at or at[-1] != len(merged) - 1:
                at.append(len(merged) - 1)
        else:
            merged.append(message)
    if not at:
        return []
    record["messages"] = merged
    return [{"repair": "merge_consecutive", "turns": at}]


def _forget_turn_layout(record: dict) -> None:
    """Turn numbers changed: the per-turn layout (content parts) no longer lines up, so writers rebuild."""
    layout = record.get("meta", {}).get(LAYOUT)
    if layout and "message_parts" in layout:
        record["meta"] = {**record["meta"], LAYOUT: {k: v for k, v in layout.items() if k != "message_parts"}}
