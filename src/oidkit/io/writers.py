"""Writing canonical records as JSONL, Parquet, Alpaca JSON, ShareGPT JSON or OpenAI JSONL, in shards.

Writers stream: JSON arrays are written element by element and Parquet in row batches, so output size
never costs memory. ``meta["_layout"]`` (see ``formats``) lets a source format be reproduced exactly.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from oidkit.atomic import fsync, rename_target, write_atomic, writes_in_place, writing_path
from oidkit.errors import OidError
from oidkit.io.formats import CHAT_FORMATS, INSTRUCTION_FORMATS, LAYOUT, TAG_SPELLINGS, RowProblem, parse_tool_call
from oidkit.io.outputs import manifest_path, publish_shards
from oidkit.io.parts import PLACEHOLDERS, TOOL_CALL_PARTS, to_parts
from oidkit.records import with_reasoning

WRITE_FORMATS = ("jsonl", "parquet", "alpaca", "sharegpt", "openai")
PARQUET_BATCH_ROWS = 1000
PARQUET_BATCH_CHARS = 32_000_000  # long conversations: flush by size too, so a batch stays bounded in memory
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string()), ("name", pa.string()),
                          ("source_role", pa.string()), ("tool_calls", pa.string()), ("reasoning", pa.string()),
                          ("extra", pa.string())])
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
    """An Alpaca row: system field, history pairs, and the last user/assistant pair as instruction/output
    (reasoning inline, see :func:`with_reasoning`)."""
    messages = list(record["messages"])
    spec, layout = INSTRUCTION_FORMATS["alpaca"], record.get("meta", {}).get(LAYOUT, {})
    row: dict[str, Any] = {}
    if messages and messages[0]["role"] == "system":
        row["system"] = messages.pop(0)["content"]
    roles = [m["role"] for m in messages]
    if len(messages) < 2 or len(messages) % 2 or roles != ["user", "assistant"] * (len(messages) // 2):
        raise RowProblem("unsupported_by_format", f"alpaca holds user/assistant pairs only, got roles {roles}")
    pairs = [[messages[i]["content"], with_reasoning(messages[i + 1])] for i in range(0, len(messages), 2)]
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
    """A ShareGPT or OpenAI row; original role spellings, per-turn extra keys and content parts restored.

    Content is written as parts when the source turn had parts (same format), and by the OpenAI writer
    when a turn has reasoning or (from another format) media placeholders; otherwise reasoning is written
    inline before the answer as ``<think>...</think>`` (the convention ShareGPT-style reasoning files use).
    """
    spec, layout = CHAT_FORMATS[format], record.get("meta", {}).get(LAYOUT, {})
    # Source spellings, per-turn extra keys and a system field belong to the source format: another
    # format gets its own default spellings (an OpenAI file must not say "chatgpt").
    same_format = record.get("source", {}).get("format") == format
    messages, row = list(record["messages"]), {}
    if same_format and layout.get("system") == "field" and messages and messages[0]["role"] == "system":
        row[spec["system"]] = messages.pop(0)["content"]
    skeletons = layout.get("message_parts", {}) if same_format else {}
    media, media_used = record.get("media") or {}, {}
    turns = []
    for i, message in enumerate(messages):
        role = message["role"]
        source_role = message.get("source_role") if same_format else None
        name = source_role or spec["spelling"]["tool_call" if message.get("tool_calls") else role]
        turn = {spec["role"]: name, spec["content"]: message["content"]}
        skeleton = skeletons.get(str(i))
        calls = message.get("tool_calls") or []
        if skeleton is not None:  # tool calls read from parts go back into the parts
            in_parts = sum(1 for shell in skeleton if shell.get("type") in TOOL_CALL_PARTS)
            calls, message = calls[: len(calls) - in_parts], {**message, "tool_calls": calls[len(calls) - in_parts:]}
        # an OpenAI source with string content and top-level media (LLaMA-Factory's) stays that way
        if skeleton is not None or (format == "openai" and _needs_parts(message, {} if same_format else media)):
            turn[spec["content"]] = to_parts(message, media, media_used, skeleton)
        elif message.get("reasoning"):
            turn[spec["content"]] = with_reasoning(message)
        if calls and format == "openai":
            turn["tool_calls"] = [_openai_tool_call(call, n) for n, call in enumerate(calls)]
            if not same_format and parse_tool_call(message["content"]) == calls:
                turn[spec["content"]] = None  # the LLaMA-Factory text was the call itself: OpenAI says null
        elif calls and source_role is None and not message["content"]:
            calls = [_llama_factory_tool_call(call) for call in calls]
            turn[spec["content"]] = orjson.dumps(calls[0] if len(calls) == 1 else calls).decode()
        if message.get("name") is not None:
            turn["name"] = message["name"]
        if same_format:
            turn.update(message.get("extra") or {})
        turns.append(turn)
    fields = _meta_fields(record)
    for kind, used in media_used.items():  # media that went into parts is not repeated as a top-level list
        if used >= len(fields.get(kind, ())):
            fields.pop(kind, None)
    return _with_id(record, {spec["messages"]: turns, **row, **fields})


def _needs_parts(message: dict, media: dict) -> bool:
    """OpenAI content must be parts to carry reasoning or media (a placeholder with media behind it)."""
    content = message.get("content") or ""
    return bool(message.get("reasoning")) or any(media.get(kind) and mark in content
                                                 for kind, mark in PLACEHOLDERS.items())


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
                 "source_role": m.get("source_role"), "tool_calls": dumps(m.get("tool_calls")),
                 "reasoning": m.get("reasoning"), "extra": dumps(m.get("extra"))}
                for m in record["messages"]]
    return {"id": record["id"], "messages": messages, "tools": dumps(record.get("tools")),
            "media": dumps(record.get("media")), "source": dumps(record.get("source", {})),
            "meta": dumps(record.get("meta", {}))}


def parquet_table(rows: list[dict]) -> pa.Table:
    """Rows of :func:`to_parquet_row` as an Arrow table of ``PARQUET_SCHEMA``, built column by column.

    Flat lists of strings plus list offsets convert several times faster than ``Table.from_pylist`` on
    nested dicts, which was most of the time of writing Parquet.
    """
    messages = [message for row in rows for message in row["messages"]]
    offsets = pa.array(itertools.accumulate((len(row["messages"]) for row in rows), initial=0), pa.int32())
    turns = pa.StructArray.from_arrays([pa.array([m[f.name] for m in messages], f.type) for f in MESSAGE_TYPE],
                                       fields=list(MESSAGE_TYPE))
    columns = [pa.ListArray.from_arrays(offsets, turns, type=field.type) if field.name == "messages"
               else pa.array([row[field.name] for row in rows], field.type) for field in PARQUET_SCHEMA]
    return pa.Table.from_arrays(columns, schema=PARQUET_SCHEMA)


ROW_MAKERS: dict[str, Callable[[dict], dict]] = {
    "jsonl": lambda record: record,
    "alpaca": to_alpaca,
    "sharegpt": lambda record: to_chat(record, "sharegpt"),
    "openai": lambda record: to_chat(record, "openai"),
}


def _open_output(raw: BinaryIO, name: str) -> BinaryIO:
    """``raw`` compressed as the output ``name`` says. gzip gets mtime 0 so reruns are byte-identical."""
    if name.endswith(".gz"):
        return gzip.GzipFile(filename=name[:-3], mode="wb", fileobj=raw, mtime=0)
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().stream_writer(raw)
    return raw


class _Shard:
    """One output file being written under its temporary name: JSONL, a JSON array, or Parquet in row batches.

    Parquet batches are encoded, compressed and written by one background thread while the next batch is
    read: pyarrow releases the GIL there, so that part of a run (a sixth of ``oid convert``) overlaps the
    Python work of reading on a second core. At most one batch is in flight, written in order, and a
    failed write is raised by the next ``write`` or ``close``.
    """

    def __init__(self, path: Path, format: str):
        self.path, self.format, self.count, self.batch, self.batch_chars = path, format, 0, [], 0
        self.writing: Future | None = None
        self.temp = writing_path(path)  # /dev/stdout, a pipe: written directly (see oidkit.atomic)
        if format == "parquet":
            self.parquet = pq.ParquetWriter(self.temp, PARQUET_SCHEMA)
            self.writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oid-parquet")
        else:
            self.raw = open(self.temp, "wb")  # noqa: SIM115 - closed in close()
            self.file = _open_output(self.raw, path.name)
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
            table = parquet_table(self.batch)
            self.batch, self.batch_chars = [], 0
            self._wait_for_write()
            self.writing = self.writer_thread.submit(self.parquet.write_table, table)

    def _wait_for_write(self) -> None:
        writing, self.writing = self.writing, None
        if writing is not None:
            writing.result()  # re-raises a failed write (disk full, ...) here, in the caller's thread

    def close(self) -> None:
        if self.format == "parquet":
            try:
                self._flush()
                self._wait_for_write()
            finally:
                self.writer_thread.shutdown()  # waits for a write still running, even on an error
                self.parquet.close()
        else:
            if self.array:
                self.file.write(b"\n]\n")
            self.file.close()
            self.raw.close()  # gzip leaves the file it wraps open


def shard_path(path: Path, number: int) -> Path:
    """``out.parquet`` -> ``out-00000.parquet`` (compression suffixes stay last)."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: -len(suffixes)] if suffixes else path.name
    return path.with_name(f"{stem}-{number:05d}{suffixes}")


def stale_shards(path: Path, count: int) -> list[Path]:
    """Shards of an earlier, larger set beyond the ``count`` a new set of ``path`` has."""
    return list(itertools.takewhile(Path.exists, (shard_path(path, n) for n in itertools.count(count))))


def other_layout(path: Path, written: list[Path]) -> list[Path]:
    """Files of an earlier output of ``path`` in the other layout than ``written``: its shard set and manifest
    when ``path`` was now written as one file, the one file ``path`` when it was now written as shards (a
    larger shard set's tail goes when the new set is published)."""
    if written == [path]:
        manifest = manifest_path(path)
        return [*stale_shards(path, 0), *([manifest] if manifest.exists() else [])]
    return [path] if path.exists() else []


def write_records(
    records: Iterable[dict],
    path: str | Path,
    *,
    format: str | None = None,
    shard_size: int | None = None,
    on_reject: Callable[[dict, RowProblem], None] | None = None,
    fields: set[str] | None = None,
) -> list[Path]:
    """Write records to ``path`` (or ``shard_size``-record shards beside it); returns the files written.

    Nothing appears under a final name before every record is written: files are written under temporary
    names and renamed at the end; shards are published with a manifest written last (see ``io.outputs``).
    A record the format cannot hold (e.g. tool turns in Alpaca) goes to ``on_reject(record, problem)``, or
    raises :class:`RowProblem` when no ``on_reject`` is given. ``fields``, when given, collects the top-level
    field names of the rows written (what a ``dataset_info.json`` entry describes).
    """
    path = Path(path)
    format = format or infer_write_format(path)
    if format not in WRITE_FORMATS:
        raise OidError(f"unknown output format {format!r}; choose one of {', '.join(WRITE_FORMATS)}")
    make_row = to_parquet_row if format == "parquet" else ROW_MAKERS[format]
    shards: list[_Shard] = []
    try:
        for record in records:
            try:
                row = make_row(record)
            except RowProblem as problem:
                if on_reject is None:
                    raise
                on_reject(record, problem)
                continue
            if fields is not None:
                fields.update(row)
            if not shards or (shard_size and shards[-1].count >= shard_size):
                if shards:
                    shards[-1].close()
                shards.append(_Shard(shard_path(path, len(shards)) if shard_size else path, format))
            shards[-1].write(row)
        if not shards:  # no records: still leave a valid, empty output
            shards.append(_Shard(shard_path(path, 0) if shard_size else path, format))
        shards[-1].close()
        if shard_size:
            publish_shards(path, [(s.temp, s.path, s.count) for s in shards], stale_shards(path, len(shards)))
        elif not writes_in_place(shards[0].temp):
            fsync(shards[0].temp)
            os.replace(shards[0].temp, rename_target(path))
    except BaseException:
        for shard in shards:
            with contextlib.suppress(Exception):
                shard.close()
            if not writes_in_place(shard.temp):  # never unlink a device or pipe we were writing to
                shard.temp.unlink(missing_ok=True)
        raise
    return [shard.path for shard in shards]


# LLaMA-Factory's dataset_info.json: how each of our formats is described to ``llamafactory-cli train``.
DATASET_INFO_COLUMNS = {
    "alpaca": INSTRUCTION_FORMATS["alpaca"],  # LLaMA-Factory's alpaca columns are the ones we read
    "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools"},
    "openai": {"messages": "messages", "system": "system", "tools": "tools"},
}


def _chat_tags(format: str) -> dict[str, str]:
    spec = CHAT_FORMATS[format]
    return {"role_tag": spec["role"], "content_tag": spec["content"],
            **{tag: spec["spelling"][spelling] for tag, spelling in TAG_SPELLINGS.items()}}


def check_dataset_info(out: str | Path, format: str | None, shard_size: int | None) -> None:
    """Refuse ``--dataset-info`` before any work when the output cannot be one LLaMA-Factory dataset file."""
    format = format or infer_write_format(Path(out))
    if format not in DATASET_INFO_COLUMNS:
        raise OidError(f"--dataset-info describes alpaca, sharegpt or openai files for LLaMA-Factory, not {format}; "
                       "name the output *.alpaca.json, *.sharegpt.json or *.openai.jsonl")
    if shard_size:
        raise OidError("--dataset-info describes one file: leave --shard-size out")


def dataset_info_entry(path: Path, format: str, fields: set[str]) -> dict:
    """The ``dataset_info.json`` entry of a file we wrote, whose rows have the top-level ``fields`` (as
    :func:`write_records` collects them): only the columns it holds, and its role spellings."""
    columns = {k: v for k, v in DATASET_INFO_COLUMNS[format].items() if v in fields or k in ("prompt", "response")}
    entry: dict[str, Any] = {"file_name": path.name, "formatting": "alpaca" if format == "alpaca" else "sharegpt",
                             "columns": columns}
    if format != "alpaca":
        entry["columns"]["messages"] = DATASET_INFO_COLUMNS[format]["messages"]
        entry["tags"] = _chat_tags(format)
    return entry


def write_dataset_info(path: str | Path, fields: set[str], format: str | None = None) -> Path:
    """Add or replace ``path``'s entry (see :func:`dataset_info_entry`) in the ``dataset_info.json`` beside it
    (other entries kept); returns it.

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
    info[name] = dataset_info_entry(path, format, fields)
    write_atomic(info_path, orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
    return info_path
