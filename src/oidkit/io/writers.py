"""Writing canonical records as JSONL, Parquet, Alpaca JSON, ShareGPT JSON or OpenAI JSONL, in shards.

Writers stream: JSON arrays are written element by element and Parquet in row batches, so output size
never costs memory. ``meta["_layout"]`` (see ``formats``) lets a source format be reproduced exactly.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from oidkit.errors import OidError
from oidkit.io.files import iter_rows, sniff_container
from oidkit.io.formats import CHAT_FORMATS, INSTRUCTION_FORMATS, LAYOUT, RowProblem, parse_tool_call

WRITE_FORMATS = ("jsonl", "parquet", "alpaca", "sharegpt", "openai")
PARQUET_BATCH_ROWS = 1000
PARQUET_BATCH_CHARS = 32_000_000  # long conversations: flush by size too, so a batch stays bounded in memory
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string()), ("name", pa.string()),
                          ("source_role", pa.string()), ("tool_calls", pa.string())])
# Fixed so that shards from any run concatenate (docs/architecture.md).
PARQUET_SCHEMA = pa.schema([("id", pa.string()), ("messages", pa.list_(MESSAGE_TYPE)), ("tools", pa.string()),
                            ("media", pa.string()), ("source", pa.string()), ("meta", pa.string())])


def infer_write_format(path: Path) -> str:
    """Format from the output name: ``.parquet``, ``.jsonl``, ``.alpaca.json``, ``.sharegpt.json``,
    ``.openai.jsonl`` (a ``.gz`` / ``.zst`` suffix on top compresses)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".zst")]
    for name in ("alpaca", "sharegpt", "openai"):
        if f".{name}" in suffixes:
            return name
    if suffixes and suffixes[-1] in (".parquet", ".jsonl"):
        return suffixes[-1][1:]
    raise OidError(f"{path}: cannot tell the output format from the name; pass --format with one of "
                   f"{', '.join(WRITE_FORMATS)} or name it *.parquet, *.jsonl, *.alpaca.json, *.sharegpt.json, "
                   "*.openai.jsonl")


def _meta_fields(record: dict) -> dict:
    """Source fields kept in meta, plus media and tools, as top-level fields of a source-format row."""
    fields = {k: v for k, v in record.get("meta", {}).items() if k != LAYOUT}
    fields.update(record.get("media") or {})
    if record.get("tools") is not None:
        fields["tools"] = record["tools"]
    return fields


def _with_id(record: dict, row: dict) -> dict:
    layout = record.get("meta", {}).get(LAYOUT, {})
    return row if layout.get("id") == "generated" else {"id": record["id"], **row}


def to_alpaca(record: dict) -> dict:
    """An Alpaca row: system field, history pairs, and the last user/assistant pair as instruction/output."""
    messages = list(record["messages"])
    spec, layout = INSTRUCTION_FORMATS["alpaca"], record.get("meta", {}).get(LAYOUT, {})
    row: dict[str, Any] = {}
    if messages and messages[0]["role"] == "system":
        row["system"] = messages.pop(0)["content"]
    roles = [m["role"] for m in messages]
    if len(messages) < 2 or len(messages) % 2 or roles != ["user", "assistant"] * (len(messages) // 2):
        raise RowProblem("unsupported_by_format", f"alpaca holds user/assistant pairs only, got roles {roles}")
    pairs = [[messages[i]["content"], messages[i + 1]["content"]] for i in range(0, len(messages), 2)]
    user, output = pairs.pop()
    query = layout.get("query")
    if query and user.endswith("\n\n" + query):
        instruction = user[: -len(query) - 2]
    elif query and user == query:
        instruction = ""
    else:  # no input, or the user turn was edited: it all becomes the instruction
        instruction, query = user, ("" if query else query)
    row[spec["prompt"]] = instruction
    if "query" not in layout or layout["query"] is not None:  # None: the source row had no input field
        row[spec["query"]] = query or ""
    row[spec["response"]] = output
    if pairs:
        row[spec["history"]] = pairs
    return _with_id(record, {**row, **_meta_fields(record)})


def to_chat(record: dict, format: str) -> dict:
    """A ShareGPT or OpenAI row; original role spellings and per-turn extra keys restored from the record."""
    spec, layout = CHAT_FORMATS[format], record.get("meta", {}).get(LAYOUT, {})
    # Source spellings, per-turn extra keys and a system field belong to the source format: another
    # format gets its own default spellings (an OpenAI file must not say "chatgpt").
    same_format = record.get("source", {}).get("format") == format
    messages, row = list(record["messages"]), {}
    if same_format and layout.get("system") == "field" and messages and messages[0]["role"] == "system":
        row[spec["system"]] = messages.pop(0)["content"]
    extras = layout.get("message_fields", {}) if same_format else {}
    turns = []
    for i, message in enumerate(messages):
        role = message["role"]
        source_role = message.get("source_role") if same_format else None
        name = source_role or spec["spelling"]["tool_call" if message.get("tool_calls") else role]
        turn = {spec["role"]: name, spec["content"]: message["content"]}
        if message.get("tool_calls") and format == "openai":
            turn["tool_calls"] = [_openai_tool_call(call, n) for n, call in enumerate(message["tool_calls"])]
            if not same_format and parse_tool_call(message["content"]) == message["tool_calls"]:
                turn[spec["content"]] = None  # the LLaMA-Factory text was the call itself: OpenAI says null
        elif message.get("tool_calls") and source_role is None and not message["content"]:
            calls = [_llama_factory_tool_call(call) for call in message["tool_calls"]]
            turn[spec["content"]] = orjson.dumps(calls[0] if len(calls) == 1 else calls).decode()
        if message.get("name") is not None:
            turn["name"] = message["name"]
        turn.update(extras.get(str(i), {}))
        turns.append(turn)
    return _with_id(record, {spec["messages"]: turns, **row, **_meta_fields(record)})


def _openai_tool_call(call: Any, n: int) -> Any:
    """OpenAI's ``{id, type, function: {name, arguments}}`` from LLaMA-Factory's ``{name, arguments}``."""
    if not isinstance(call, dict) or "function" in call or "name" not in call:
        return call
    arguments = call.get("arguments", {})
    return {"id": f"call_{n}", "type": "function",
            "function": {"name": call["name"],
                         "arguments": arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()}}


def _llama_factory_tool_call(call: Any) -> Any:
    """LLaMA-Factory's ``{name, arguments}`` from OpenAI's ``{id, type, function: {name, arguments}}``."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    arguments = call["function"].get("arguments", "{}")
    with contextlib.suppress(orjson.JSONDecodeError):  # arguments that are not JSON stay the text they are
        arguments = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    return {"name": call["function"].get("name"), "arguments": arguments}


def to_parquet_row(record: dict) -> dict:
    """The fixed Parquet schema's row: nested parts as JSON strings."""
    def dumps(value: Any) -> str | None:
        return None if value is None else orjson.dumps(value, option=JSON_OPTIONS).decode()

    messages = [{"role": m.get("role"), "content": m.get("content"), "name": m.get("name"),
                 "source_role": m.get("source_role"), "tool_calls": dumps(m.get("tool_calls"))}
                for m in record["messages"]]
    return {"id": record["id"], "messages": messages, "tools": dumps(record.get("tools")),
            "media": dumps(record.get("media")), "source": dumps(record.get("source", {})),
            "meta": dumps(record.get("meta", {}))}


ROW_MAKERS: dict[str, Callable[[dict], dict]] = {
    "jsonl": lambda record: record,
    "alpaca": to_alpaca,
    "sharegpt": lambda record: to_chat(record, "sharegpt"),
    "openai": lambda record: to_chat(record, "openai"),
}


def _open_output(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "wb")
    if path.suffix == ".zst":
        return zstandard.ZstdCompressor().stream_writer(open(path, "wb"))
    return open(path, "wb")


class _Shard:
    """One output file being written: JSONL, a JSON array, or Parquet in row batches."""

    def __init__(self, path: Path, format: str):
        self.path, self.format, self.count, self.batch, self.batch_chars = path, format, 0, [], 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if format == "parquet":
            self.parquet = pq.ParquetWriter(path, PARQUET_SCHEMA)
        else:
            self.file = _open_output(path)
            self.array = format in ("alpaca", "sharegpt")
            if self.array:
                self.file.write(b"[")

    def write(self, row: dict) -> None:
        if self.format == "parquet":
            self.batch.append(row)
            self.batch_chars += len(row["meta"]) + sum(len(m["content"] or "") for m in row["messages"])
            if len(self.batch) >= PARQUET_BATCH_ROWS or self.batch_chars >= PARQUET_BATCH_CHARS:
                self._flush()
        elif self.array:
            separator = b",\n" if self.count else b"\n"
            self.file.write(separator + orjson.dumps(row, option=JSON_OPTIONS | orjson.OPT_INDENT_2))
        else:
            self.file.write(orjson.dumps(row, option=JSON_OPTIONS) + b"\n")
        self.count += 1

    def _flush(self) -> None:
        if self.batch:
            self.parquet.write_table(pa.Table.from_pylist(self.batch, schema=PARQUET_SCHEMA))
            self.batch, self.batch_chars = [], 0

    def close(self) -> None:
        if self.format == "parquet":
            self._flush()
            self.parquet.close()
        else:
            if self.array:
                self.file.write(b"\n]\n")
            self.file.close()


def shard_path(path: Path, number: int) -> Path:
    """``out.parquet`` -> ``out-00000.parquet`` (compression suffixes stay last)."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: -len(suffixes)] if suffixes else path.name
    return path.with_name(f"{stem}-{number:05d}{suffixes}")


def write_records(
    records: Iterable[dict],
    path: str | Path,
    *,
    format: str | None = None,
    shard_size: int | None = None,
    on_reject: Callable[[dict, RowProblem], None] | None = None,
) -> list[Path]:
    """Write records to ``path`` (or ``shard_size``-record shards beside it); returns the files written.

    A record the format cannot hold (e.g. tool turns in Alpaca) goes to ``on_reject(record, problem)``, or
    raises :class:`RowProblem` when no ``on_reject`` is given.
    """
    path = Path(path)
    format = format or infer_write_format(path)
    if format not in WRITE_FORMATS:
        raise OidError(f"unknown output format {format!r}; choose one of {', '.join(WRITE_FORMATS)}")
    make_row = to_parquet_row if format == "parquet" else ROW_MAKERS[format]
    written: list[Path] = []
    shard: _Shard | None = None
    try:
        for record in records:
            try:
                row = make_row(record)
            except RowProblem as problem:
                if on_reject is None:
                    raise
                on_reject(record, problem)
                continue
            if shard is None or (shard_size and shard.count >= shard_size):
                if shard:
                    shard.close()
                shard = _Shard(shard_path(path, len(written)) if shard_size else path, format)
                written.append(shard.path)
            shard.write(row)
        if shard is None:  # no records: still leave a valid, empty output
            shard = _Shard(shard_path(path, 0) if shard_size else path, format)
            written.append(shard.path)
    finally:
        if shard:
            shard.close()
    return written


# LLaMA-Factory's dataset_info.json: how each of our formats is described to ``llamafactory-cli train``.
DATASET_INFO_COLUMNS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
               "history": "history"},
    "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools"},
    "openai": {"messages": "messages", "system": "system", "tools": "tools"},
}


def _chat_tags(format: str) -> dict[str, str]:
    spec = CHAT_FORMATS[format]
    spelling = spec["spelling"]
    return {"role_tag": spec["role"], "content_tag": spec["content"], "user_tag": spelling["user"],
            "assistant_tag": spelling["assistant"], "observation_tag": spelling["tool"],
            "function_tag": spelling["tool_call"], "system_tag": spelling["system"]}


def check_dataset_info(out: str | Path, format: str | None, shard_size: int | None) -> None:
    """Refuse ``--dataset-info`` before any work when the output cannot be one LLaMA-Factory dataset file."""
    format = format or infer_write_format(Path(out))
    if format not in DATASET_INFO_COLUMNS:
        raise OidError(f"--dataset-info describes alpaca, sharegpt or openai files for LLaMA-Factory, not {format}; "
                       "name the output *.alpaca.json, *.sharegpt.json or *.openai.jsonl")
    if shard_size:
        raise OidError("--dataset-info describes one file: leave --shard-size out")


def dataset_info_entry(path: Path, format: str) -> dict:
    """The ``dataset_info.json`` entry of a file we wrote: only the columns it holds, and its role spellings."""
    keys: set[str] = set()
    for row, _ in iter_rows(path, sniff_container(path)):
        keys |= set(row) if isinstance(row, dict) else set()
    columns = {k: v for k, v in DATASET_INFO_COLUMNS[format].items() if v in keys or k in ("prompt", "response")}
    entry: dict[str, Any] = {"file_name": path.name, "formatting": "alpaca" if format == "alpaca" else "sharegpt",
                             "columns": columns}
    if format != "alpaca":
        entry["columns"]["messages"] = DATASET_INFO_COLUMNS[format]["messages"]
        entry["tags"] = _chat_tags(format)
    return entry


def write_dataset_info(path: str | Path, format: str | None = None) -> Path:
    """Add or replace ``path``'s entry in the ``dataset_info.json`` beside it (other entries kept); returns it.

    The entry is named after the file without its data suffixes (``chat.sharegpt.json`` -> ``chat.sharegpt``).
    """
    path = Path(path)
    format = format or infer_write_format(path)
    info_path = path.parent / "dataset_info.json"
    info = {}
    if info_path.exists():
        try:
            info = orjson.loads(info_path.read_bytes())
        except orjson.JSONDecodeError as e:
            raise OidError(f"{info_path}: not valid JSON ({e}); fix or remove it, then run again") from None
        if not isinstance(info, dict):
            raise OidError(f"{info_path}: expected an object of dataset entries; fix or remove it, then run again")
    name = path.name
    while Path(name).suffix.lower() in (".json", ".jsonl", ".gz", ".zst"):
        name = Path(name).stem
    info[name] = dataset_info_entry(path, format)
    partial = info_path.with_name(info_path.name + ".partial")
    partial.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
    partial.replace(info_path)  # atomic: a reader never sees half a file
    return info_path
