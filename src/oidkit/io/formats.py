"""Source formats <-> canonical records: one mapping table per format, LLaMA-Factory style.

A new instruction-style or chat-style format is one entry in ``INSTRUCTION_FORMATS`` or ``CHAT_FORMATS``
plus its key signature in ``SIGNATURES``. What a writer needs to reproduce the source exactly (was the
system prompt a field or a turn, the original ``input``, the shape of content parts, a generated id) is
kept in ``meta["_layout"]``; every other source field is kept in ``meta`` as is, every other turn field in
the message's ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from oidkit.io.parts import from_parts
from oidkit.records import DEFAULT_ROLE_MAP, make_record, normalise_role

MEDIA_KEYS = ("images", "videos", "audios")
LAYOUT = "_layout"

# field of the source row -> part of the instruction-style record
INSTRUCTION_FORMATS: dict[str, dict[str, str]] = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
               "history": "history"},
    "dolly": {"prompt": "instruction", "query": "context", "response": "response"},
    "prompt_completion": {"prompt": "prompt", "response": "completion", "system": "system"},
}
# chat-style: where the turns live, their role and content keys, and the default spelling of each role
CHAT_FORMATS: dict[str, dict[str, Any]] = {
    "sharegpt": {"messages": "conversations", "role": "from", "content": "value", "system": "system",
                 "spelling": {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation",
                              "tool_call": "function_call"}},
    "openai": {"messages": "messages", "role": "role", "content": "content", "system": "system",
               "spelling": {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool",
                            "tool_call": "assistant"}},
}
# keys every row of a format has; detection tries these in order, the first that fits most rows wins
SIGNATURES: dict[str, set[str]] = {
    "canonical": {"id", "messages", "source", "meta"},
    "oasst_tree": {"message_tree_id", "prompt"},
    "oasst": {"message_id", "parent_id", "text", "role"},
    "sharegpt": {"conversations"},
    "openai": {"messages"},
    "dolly": {"instruction", "context", "response"},
    "alpaca": {"instruction", "output"},
    "prompt_completion": {"prompt", "completion"},
}
READ_FORMATS = tuple(SIGNATURES)
# LLaMA-Factory's dataset_info.json: "columns" name row fields, "tags" name the keys and role spellings of
# sharegpt-style turns. ``--columns`` takes the same keys (role/content short for role_tag/content_tag).
COLUMN_KEYS = ("prompt", "query", "response", "history", "messages", "system", "tools")
TAG_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "observation_tag": "tool",
             "function_tag": "assistant", "system_tag": "system"}
TAG_KEYS = ("role_tag", "content_tag", *TAG_ROLES)
# The spelling (a ``CHAT_FORMATS`` "spelling" key) each tag names: a function_tag turn is an assistant's tool call.
TAG_SPELLINGS = {**TAG_ROLES, "function_tag": "tool_call"}


class RowProblem(Exception):
    """A row that cannot become a record: ``reason`` is a stable reject code, ``detail`` says where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def detect_format(rows: list) -> str | None:
    """The format whose signature most of the sample ``rows`` carry, or ``None``."""
    objects = [row for row in rows if isinstance(row, dict)]
    for name, keys in SIGNATURES.items():
        if objects and sum(keys <= row.keys() for row in objects) * 2 > len(objects):
            return name
    return None


def column_spec(entry: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``(format spec, extra role names)`` of a LLaMA-Factory ``dataset_info.json`` entry.

    The spec has the shape of an ``INSTRUCTION_FORMATS`` or ``CHAT_FORMATS`` entry (a chat spec has
    ``messages``); the role names come from the ``*_tag`` values, e.g. ``{"SYSTEM": "assistant"}``. Raises
    ``ValueError`` naming an unknown key or a missing required column.
    """
    columns, tags = dict(entry.get("columns") or {}), dict(entry.get("tags") or {})
    unknown = sorted(set(columns) - set(COLUMN_KEYS)) + sorted(set(tags) - set(TAG_KEYS))
    if unknown:
        raise ValueError(f"unknown column mapping key(s) {unknown}; columns: {', '.join(COLUMN_KEYS)}; "
                         f"tags: {', '.join(TAG_KEYS)}")
    chat = entry.get("formatting", "sharegpt" if "messages" in columns else "alpaca") == "sharegpt"
    if not chat:
        spec = {"prompt": "instruction", "query": "input", "response": "output", **columns}
        return {k: v for k, v in spec.items() if k != "tools"}, {}
    defaults = CHAT_FORMATS["sharegpt"]
    spelling = {**defaults["spelling"], **{key: tags[tag] for tag, key in TAG_SPELLINGS.items() if tag in tags}}
    spec = {"messages": columns.get("messages", defaults["messages"]), "role": tags.get("role_tag", "from"),
            "content": tags.get("content_tag", "value"), "system": columns.get("system", "system"),
            "spelling": spelling}
    return spec, {tags[tag]: role for tag, role in TAG_ROLES.items() if tag in tags}


def to_records(row: Any, format: str, source: dict, role_map: Mapping[str, str] = DEFAULT_ROLE_MAP,
               spec: Mapping[str, Any] | None = None) -> list[dict]:
    """Canonical records of one source row (OASST trees give one per path); raises :class:`RowProblem`.

    ``spec`` (from :func:`column_spec`) reads a row whose fields no known format names.
    """
    if not isinstance(row, dict):
        raise RowProblem("not_an_object", f"the row is a JSON {type(row).__name__}, expected an object")
    if spec is not None:
        return [from_chat(row, spec, source, role_map) if "messages" in spec else from_instruction(row, spec, source)]
    if format == "canonical":
        return [from_canonical_row(row)]
    if format == "oasst_tree":
        return from_oasst_tree(row, source, role_map)
    if format in CHAT_FORMATS:
        return [from_chat(row, CHAT_FORMATS[format], source, role_map)]
    return [from_instruction(row, INSTRUCTION_FORMATS[format], source)]


def _split_common(row: dict, consumed: set[str]) -> tuple[str | None, dict | None, Any, dict, dict]:
    """``(id, media, tools, meta, layout)``: the parts every format shares."""
    row_id = row.get("id")
    layout: dict[str, Any] = {}
    if isinstance(row_id, str) and row_id:
        consumed.add("id")
    else:
        row_id, layout["id"] = None, "generated"
    media = {k: row[k] for k in MEDIA_KEYS if isinstance(row.get(k), list) and row[k]}
    tools = row.get("tools") if row.get("tools") not in (None, "", []) else None
    consumed |= set(media) | ({"tools"} if tools is not None else set())
    meta = {k: v for k, v in row.items() if k not in consumed}
    return row_id, media or None, tools, meta, layout


def _string(row: dict, key: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if key not in row:
        raise RowProblem("missing_field", f"no {key!r} field")
    if not isinstance(value, str):
        raise RowProblem("bad_type", f"{key!r} is {type(value).__name__}, expected a string")
    return value


def from_instruction(row: dict, spec: dict[str, str], source: dict) -> dict:
    """Alpaca / Dolly / prompt-completion: user = prompt + ("\\n\\n" + query), then the response."""
    prompt, response = _string(row, spec["prompt"]), _string(row, spec["response"])
    query = _string(row, spec["query"], required=False) if "query" in spec else None
    consumed = {spec["prompt"], spec["response"]}
    messages: list[dict] = []
    system = row.get(spec["system"]) if "system" in spec else None
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
        consumed.add(spec["system"])
    history = row.get(spec["history"]) if "history" in spec else None
    if isinstance(history, list) and history:
        for i, pair in enumerate(history):
            if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise RowProblem("bad_type", f"history[{i}] is not a [user, assistant] pair of strings")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        consumed.add(spec["history"])
    messages += [{"role": "user", "content": "\n\n".join(p for p in (prompt, query) if p)},
                 {"role": "assistant", "content": response}]
    if query is not None:
        consumed.add(spec["query"])
    row_id, media, tools, meta, layout = _split_common(row, consumed)
    if "query" in spec:
        layout["query"] = query
    if layout:
        meta[LAYOUT] = layout
    return make_record(messages, id=row_id, source=source, meta=meta, tools=tools, media=media)


def from_chat(row: dict, spec: dict[str, Any], source: dict, role_map: Mapping[str, str]) -> dict:
    """ShareGPT / OpenAI chat: turns mapped through the role table; unknown roles kept for the checker.

    A turn's keys beyond role, content, name and tool calls (``loss_weight``, ``tool_call_id``, a ``null``
    content) stay on the message as ``extra``; content given as parts goes through ``parts.from_parts``.
    """
    turns = row.get(spec["messages"])
    if spec["messages"] not in row:
        raise RowProblem("missing_field", f"no {spec['messages']!r} field")
    if not isinstance(turns, list):
        raise RowProblem("bad_type", f"{spec['messages']!r} is {type(turns).__name__}, expected a list")
    consumed, messages, skeletons, part_media = {spec["messages"]}, [], {}, {}
    message_keys = {spec["role"], spec["content"], "name", "tool_calls"}  # built once, not per key of every turn
    system = row.get(spec["system"])
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
        consumed.add(spec["system"])
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowProblem("bad_type", f"turn {i} is {type(turn).__name__}, expected an object")
        message = _chat_message(turn, spec, role_map)
        if isinstance(message["content"], list):
            try:
                parts = from_parts(message["content"], i)
            except ValueError as e:
                raise RowProblem("bad_type", str(e)) from None
            message["content"] = parts["content"]
            if parts["reasoning"]:
                message["reasoning"] = parts["reasoning"]
            if parts["tool_calls"]:
                message["tool_calls"] = [*message.get("tool_calls", []), *parts["tool_calls"]]
            for kind, value in parts["media"]:
                part_media.setdefault(kind, []).append(value)
            skeletons[str(i)] = parts["skeleton"]
        extra = {k: v for k, v in turn.items() if k not in message_keys}
        if turn.get(spec["content"]) is None and spec["content"] in turn:
            extra[spec["content"]] = None  # e.g. an OpenAI tool-call turn; restored by the writer
        if extra:
            message["extra"] = extra
        messages.append(message)
    row_id, media, tools, meta, layout = _split_common(row, consumed)
    for kind, values in part_media.items():  # after the row's own lists: placeholders count in text order
        media = media or {}
        media[kind] = [*media.get(kind, []), *values]
    if len(messages) > len(turns):
        layout["system"] = "field"
    if skeletons:
        layout["message_parts"] = skeletons
    if layout:
        meta[LAYOUT] = layout
    return make_record(messages, id=row_id, source=source, meta=meta, tools=tools, media=media)


def _chat_message(turn: dict, spec: dict[str, Any], role_map: Mapping[str, str]) -> dict:
    name, content = turn.get(spec["role"]), turn.get(spec["content"])
    role = normalise_role(name, role_map) or name
    message: dict[str, Any] = {"role": role, "content": "" if content is None else content}
    tool_calls = turn.get("tool_calls")
    if name == spec["spelling"]["tool_call"] and name != spec["spelling"]["assistant"] and isinstance(content, str):
        tool_calls = parse_tool_call(content)  # LLaMA-Factory: the function_call turn's value is JSON
    if tool_calls:
        message["tool_calls"] = tool_calls
    if turn.get("name") is not None:
        message["name"] = turn["name"]
    if name != spec["spelling"].get("tool_call" if tool_calls else role):
        message["source_role"] = name
    return message


def parse_tool_call(text: str) -> list | None:
    """The tool calls in a LLaMA-Factory ``function_call`` turn's text, or ``None`` when it is not JSON."""
    try:
        call = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return call if isinstance(call, list) else [call] if isinstance(call, dict) else None


def from_oasst_tree(row: dict, source: dict, role_map: Mapping[str, str]) -> list[dict]:
    """One record per root-to-leaf path of an OASST message tree (``prompt`` with nested ``replies``)."""
    root = row.get("prompt")
    if not isinstance(root, dict):
        raise RowProblem("bad_type", "'prompt' is not a message object")
    tree_meta = {k: v for k, v in row.items() if k != "prompt"}
    records = []
    for path in _tree_paths(root):
        messages, nodes = [], []
        for node in path:
            name = node.get("role")
            messages.append({"role": normalise_role(name, role_map) or name, "content": node.get("text")})
            nodes.append({k: v for k, v in node.items() if k not in ("text", "replies", "role")})
        leaf_id = path[-1].get("message_id")
        records.append(make_record(messages, id=leaf_id, source=source, meta={**tree_meta, "oasst_nodes": nodes}))
    return records


def _tree_paths(node: dict) -> list[list[dict]]:
    replies = [r for r in node.get("replies") or [] if isinstance(r, dict)]
    if not replies:
        return [[node]]
    return [[node, *path] for reply in replies for path in _tree_paths(reply)]


def oasst_tree_from_messages(rows: list[dict]) -> dict:
    """Nest flat OASST message rows (``message_id`` / ``parent_id``) of one tree into the tree shape."""
    nodes = {row["message_id"]: {**row, "replies": []} for row in rows}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.get("parent_id"))
        (parent["replies"] if parent else roots).append(node)
    if len(roots) != 1:
        raise RowProblem("bad_type", f"message tree has {len(roots)} roots, expected 1")
    return {"message_tree_id": rows[0].get("message_tree_id"), "prompt": roots[0]}


def from_canonical_row(row: dict) -> dict:
    """A canonical record as stored in JSONL (unchanged) or Parquet (JSON-string columns decoded)."""
    if not isinstance(row.get("messages"), list):
        raise RowProblem("missing_field" if "messages" not in row else "bad_type", "'messages' is not a list")
    if not isinstance(row.get("meta"), str):
        return row  # JSONL: already the record (a string ``tools`` there is the source's own JSON text)
    record = {key: value for key, value in row.items() if value is not None}
    for key in ("tools", "media", "source", "meta"):
        if key in record:
            record[key] = orjson.loads(record[key])
    messages = []
    for message in record.get("messages") or []:
        message = {k: v for k, v in message.items() if v is not None or k == "content"}
        for key in ("tool_calls", "extra"):
            if key in message:
                message[key] = orjson.loads(message[key])
        messages.append(message)
    record["messages"] = messages
    return record
