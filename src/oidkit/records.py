"""The canonical record: the one shape every stage of oidkit reads and writes.

A record is a plain ``dict`` (fast to build, trivially JSON/Arrow-serialisable, picklable for Ray):

    {
      "id": "3f9c0a2b7d1e4c55",               # source id if it had one, else content hash
      "messages": [                            # roles: system | user | assistant | tool
        {"role": "user", "content": "..."},
        {"role": "assistant", "content": "...", "tool_calls": [...]},   # optional keys
        {"role": "assistant", "content": "...", "reasoning": "...", "extra": {"loss_weight": 1.0}},
      ],
      "tools": "[...json schema...]",          # optional: tool definitions, kept verbatim
      "media": {"images": ["a.png"]},          # optional: images / videos / audios (paths, URLs, data)
      "source": {"file": "x.json", "line": 12, "offset": 3456, "index": 11, "format": "sharegpt"},
      "meta": {...},                           # every other source field, never dropped
    }

Per-message optional keys: ``tool_calls`` (list), ``name`` (tool/function name), ``source_role`` (the
original role name when it differs from the default spelling of the canonical role, e.g. ``chatgpt``),
``reasoning`` (the turn's thinking, kept apart from ``content`` so templates that support thinking render
it and training chooses whether to learn it) and ``extra`` (every other key of the source turn, e.g.
``loss_weight``, ``tool_call_id``), so writers can reproduce the source exactly. Media items appear in
``content`` as placeholders (``<image>``, ``<audio>``, ``<video>``), one per item, in order.
``meta["repairs"]`` lists what ingest repaired (``oidkit.io.repair``).

Rejected rows and records share one shape too (see :func:`make_reject`), whether ingest or a curation
operator rejected them, so reports and the review app read both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

# Source role name -> canonical role. A table, not if-statements: users extend it with
# ``extend_role_map`` or ``--role-map name=role`` on the command line.
DEFAULT_ROLE_MAP: dict[str, str] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "usr": "user",  # CrossWOZ; its "sys" (the dialogue system) is the assistant: --role-map sys=assistant
    "prompter": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
}


def extend_role_map(extra: Mapping[str, str], base: Mapping[str, str] = DEFAULT_ROLE_MAP) -> dict[str, str]:
    """Return ``base`` with ``extra`` added; raise ``ValueError`` naming any target that is not a role."""
    bad = {k: v for k, v in extra.items() if v not in ROLES}
    if bad:
        raise ValueError(f"role map targets must be one of {', '.join(ROLES)}; got {bad}")
    return {**base, **{k.lower(): v for k, v in extra.items()}}


def normalise_role(name: Any, role_map: Mapping[str, str] = DEFAULT_ROLE_MAP) -> str | None:
    """Canonical role for a source role name, or ``None`` when the name is unknown."""
    if not isinstance(name, str):
        return None
    return role_map.get(name.strip().lower())


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys) used for hashing and fingerprints."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def content_id(messages: list[dict], tools: Any = None, media: Any = None) -> str:
    """Stable id from the conversation content: the same conversation always gets the same id."""
    digest = hashlib.blake2b(canonical_json([messages, tools, media]), digest_size=8)
    return digest.hexdigest()


def make_record(
    messages: list[dict],
    *,
    id: str | None = None,
    source: dict | None = None,
    meta: dict | None = None,
    tools: Any = None,
    media: dict | None = None,
) -> dict:
    """Build a canonical record; optional parts are present only when they carry something."""
    record: dict[str, Any] = {
        "id": str(id) if id not in (None, "") else content_id(messages, tools, media),
        "messages": messages,
    }
    if tools not in (None, "", []):
        record["tools"] = tools
    if media:
        record["media"] = media
    record["source"] = source or {}
    record["meta"] = meta or {}
    return record


def texts(record: Mapping, roles: Iterable[str] = ("user", "assistant")) -> list[str]:
    """Contents of the messages with the given roles, in order."""
    wanted = set(roles)
    return [m.get("content") or "" for m in record["messages"] if m.get("role") in wanted]


def text(record: Mapping, roles: Iterable[str] = ("user", "assistant"), sep: str = "\n") -> str:
    """All text of the given roles joined: what filters, dedup and language id look at."""
    return sep.join(texts(record, roles))


def first_user(record: Mapping) -> str:
    """The first user turn: the "instruction" of an instruction record."""
    for m in record["messages"]:
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


# Problems a conversation can have. Ingest quarantines on them (or raises with --strict); the curate
# recipe can check them again after edits. Codes are stable: reports and tests count by them.
PROBLEM_CODES: dict[str, str] = {
    "empty_conversation": "the conversation has no turns",
    "unknown_role": "a turn has a role that is not in the role map (extend it with --role-map)",
    "bad_type": "a field has the wrong type (e.g. content is not a string)",
    "no_user_turn": "the conversation has no user turn",
    "no_assistant_turn": "the conversation has no assistant turn",
    "non_alternating": "user and assistant turns do not alternate",
    "empty_assistant_turn": "an assistant turn is empty",
    "system_not_first": "a system turn appears after the first turn",
}


def conversation_problems(messages: Any) -> list[tuple[str, str]]:
    """List ``(code, detail)`` problems of canonical messages; empty when the conversation is well formed.

    Well formed: optional leading system turn, then user/assistant alternating starting with user, tool
    turns only after an assistant turn (they answer its tool calls), at least one user and one
    assistant turn, no empty assistant turn unless it carries tool calls.
    """
    if not isinstance(messages, list):
        return [("bad_type", f"messages is {type(messages).__name__}, expected a list")]
    if not messages:
        return [("empty_conversation", "0 turns")]
    problems: list[tuple[str, str]] = []
    previous = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return [("bad_type", f"turn {i} is {type(m).__name__}, expected an object")]
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            problems.append(("unknown_role", f"turn {i} has role {role!r}"))
            continue
        if not isinstance(content, str):
            problems.append(("bad_type", f"turn {i} content is {type(content).__name__}, expected a string"))
            continue
        if role == "system":
            if i != 0:
                problems.append(("system_not_first", f"system turn at position {i}"))
            continue
        if role == "assistant" and not content.strip() and not m.get("tool_calls"):
            problems.append(("empty_assistant_turn", f"turn {i} is empty"))
        expected = {None: {"user"}, "system": {"user"}, "user": {"assistant"},
                    "assistant": {"user", "tool"}, "tool": {"assistant", "tool"}}[previous]
        if role not in expected:
            problems.append(("non_alternating", f"turn {i} is {role} after {previous or 'the start'}"))
        previous = role
    roles = {m.get("role") for m in messages if isinstance(m, dict)}
    if "user" not in roles:
        problems.append(("no_user_turn", ""))
    if "assistant" not in roles:
        problems.append(("no_assistant_turn", ""))
    return problems


def make_reject(
    record: Any,
    *,
    stage: str,
    operator: str,
    reason: str,
    detail: str = "",
    value: Any = None,
    source: dict | None = None,
    **extra: Any,
) -> dict:
    """One rejected row or record, with who dropped it, why, and the measured value that decided.

    ``record`` is the canonical record (curate) or the original row / raw text (ingest), so nothing
    is lost: fixing the reason and re-feeding the rejects file recovers the data.
    """
    if source is None:
        source = record.get("source", {}) if isinstance(record, dict) else {}
    reject = {
        "stage": stage,
        "operator": operator,
        "reason": reason,
        "detail": detail,
        "value": value,
        "source": source,
        "record": record,
    }
    reject.update(extra)
    return reject


def with_reasoning(message: dict) -> str:
    """The content with the message's reasoning inline before it as ``<think>...</think>``, for formats
    without a place of their own for reasoning (the convention of R1-style distilled data)."""
    if not message.get("reasoning"):
        return message["content"]
    return f"<think>\n{message['reasoning']}\n</think>\n\n{message['content']}"
