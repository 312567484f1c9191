"""``read_records``: files -> rows -> canonical records, with bad rows quarantined, never crashing a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, groupby, islice
from pathlib import Path
from typing import Any

from oidkit.errors import InputError
from oidkit.io.files import archive_members, array_left_open, expand_paths, iter_rows, sniff_container, unwrap
from oidkit.io.formats import (
    READ_FORMATS,
    SIGNATURES,
    RowProblem,
    column_spec,
    detect_format,
    oasst_tree_from_messages,
    to_records,
)
from oidkit.io.jsonstream import Unreadable
from oidkit.io.mapping import load_mapping
from oidkit.io.repair import REPAIRS, parse_repairs, repair_records
from oidkit.records import DEFAULT_ROLE_MAP, PROBLEM_CODES, conversation_problems, extend_role_map, make_reject

DETECT_SAMPLE_ROWS = 20
PROGRESS_EVERY_ROWS = 512
# Reject codes of ingest beyond the conversation problems of records.PROBLEM_CODES.
INGEST_REASONS: dict[str, str] = {
    "invalid_json": "the row is not valid JSON",
    "invalid_utf8": "the row contains bytes that are not valid UTF-8",
    "truncated": "the file ends inside a record, or its compressed data is cut or corrupt there "
                 "(--salvage keeps the records before it)",
    "not_an_object": "the row is not a JSON object",
    "missing_field": "a field the format requires is missing",
    "unsupported_by_format": "the output format cannot hold this record (e.g. tool turns in Alpaca)",
    **PROBLEM_CODES,
}


class ReadStats:
    """What a read saw: files with their container and format, rows, records, rejects by reason, bytes."""

    def __init__(self) -> None:
        self.files: list[dict] = []
        self.rows = 0
        self.records = 0
        self.rejected: Counter[str] = Counter()
        self.repaired: Counter[str] = Counter()  # records per repair policy, and "joined_rows"
        self.unreadable_bytes = 0
        self.bytes_read = 0

    def as_dict(self) -> dict:
        """The summary; ``rows == records + rejected + joined_rows`` (less the ``truncated`` tail, which is
        no row) except for OASST trees, whose rows give one record per path."""
        repaired = {name: self.repaired[name] for name in REPAIRS if self.repaired[name]}
        return {"files": self.files, "rows": self.rows, "records": self.records,
                "rejected": dict(self.rejected.most_common()), "repaired": repaired,
                "joined_rows": self.repaired["joined_rows"], "unreadable_bytes": self.unreadable_bytes}


@dataclass(frozen=True)
class ReadOptions:
    """How every file of one ``read_records`` call is read (checked and resolved there, once)."""

    format: str | None
    salvage: bool
    strict: bool
    role_map: Mapping[str, str]
    allow: frozenset[str]
    repairs: tuple[str, ...]
    spec: Mapping[str, Any] | None  # the --columns mapping, resolved
    field: str | None
    python_literals: bool


def read_records(
    paths: str | Path | list,
    *,
    format: str | None = None,
    salvage: bool = False,
    strict: bool = False,
    role_map: Mapping[str, str] | None = None,
    on_reject: Callable[[dict], None] | None = None,
    stats: ReadStats | None = None,
    on_progress: Callable[[int], None] | None = None,
    allow: Iterable[str] = (),
    repairs: str | Iterable[str] = REPAIRS,
    columns: str | Mapping[str, Any] | None = None,
    field: str | None = None,
    python_literals: bool = False,
) -> Iterator[dict]:
    """Canonical records from files, folders (shards), globs or zip archives (every member), streamed.

    Rows that cannot become well-formed records go to ``on_reject`` as ``records.make_reject`` dicts
    (stage ``ingest``; without ``on_reject`` they are only counted in ``stats``), or raise
    :class:`InputError` with ``strict``. A truncated JSON array, or cut or corrupt gzip/zstd data, raises
    unless ``salvage``, which keeps the complete records and rejects the tail as ``truncated`` (one row
    read). ``stats`` is filled while reading; ``on_progress(bytes)`` receives the input bytes read so far.
    ``allow`` names conversation problems to accept, e.g. ``{"no_assistant_turn", "empty_assistant_turn"}`` to read
    instruction-only records that a model will answer. ``repairs`` names the ``io.repair`` policies
    applied before the checks (all by default; ``()`` reads the rows as they are), per file.

    ``columns`` maps the fields of a file no known format names (see ``io.mapping.load_mapping``: inline
    ``prompt=question,response=answer``, a YAML file or a ``dataset_info.json#name`` entry); ``field`` names
    the key of a JSON object that holds the rows (found alone when exactly one key holds them);
    ``python_literals`` reads JSONL lines written as Python dicts (``{'a': 1}``) safely.
    """
    if format is not None and format not in READ_FORMATS:
        raise InputError(f"unknown input format {format!r}; choose one of {', '.join(READ_FORMATS)}")
    unknown = set(allow) - set(PROBLEM_CODES)
    if unknown:
        raise InputError(f"cannot allow {sorted(unknown)}: only conversation problems can be allowed, "
                         f"one of {', '.join(PROBLEM_CODES)}")
    try:
        repairs = parse_repairs(repairs)
    except ValueError as e:
        raise InputError(str(e)) from None
    stats = stats if stats is not None else ReadStats()
    role_map = role_map or DEFAULT_ROLE_MAP
    spec = None
    if columns is not None:
        entry = load_mapping(columns)
        try:
            spec, tag_roles = column_spec(entry)
        except ValueError as e:
            raise InputError(str(e)) from None
        role_map = extend_role_map(tag_roles, base=role_map)
        field = field or entry.get("field")
    options = ReadOptions(format=format, salvage=salvage, strict=strict, role_map=role_map, allow=frozenset(allow),
                          repairs=repairs, spec=spec, field=field, python_literals=python_literals)
    for path in expand_paths(paths):
        for member in archive_members(path):
            yield from _read_file(member, options, on_reject, stats, on_progress)


def _read_file(path: Path, options: ReadOptions, on_reject: Callable[[dict], None] | None, stats: ReadStats,
               on_progress: Callable[[int], None] | None) -> Iterator[dict]:
    container = sniff_container(path)
    if container == "json" and not options.salvage and isinstance(path, Path) and array_left_open(path):
        _fail_fast_on_truncation(path)
    counters: list = []
    rows = iter_rows(path, container, counters, options.python_literals)
    head = list(islice(rows, DETECT_SAMPLE_ROWS))
    if not head:  # an empty shard: nothing to read, nothing wrong
        stats.files.append({"file": str(path), "container": container, "format": None})
        return
    if not options.python_literals:
        _refuse_python_literals(head, path)
    if container == "json_object" and isinstance(head[0][0], Unreadable):  # one document: nothing to salvage
        raise InputError(f"one JSON object over several lines, and it is not valid JSON: {head[0][0].detail}",
                         file=str(path), hint="fix the file; JSONL has one complete object per line")
    spec, field, file_stats = options.spec, options.field, {"file": str(path), "container": container}
    format = options.format  # the given format, or the one detected below
    if field or (container in ("json_object", "jsonl") and len(head) == 1 and not _fits(head[0][0], format, spec)):
        if field and not (container in ("json_object", "jsonl") and len(head) == 1):
            raise InputError(f"--field {field}: expected a file holding one JSON object, found a {container} "
                             "file of several rows", file=str(path), hint="drop --field for this file")
        unwrapped = unwrap(head[0][0], field)
        if unwrapped:
            items, key, file_stats["note"] = unwrapped
            where = {"field": key} if key else {}  # rows keyed by id: the id names them
            file_stats.update(where)
            rows = ((row, {**where, "index": index}) for index, row in enumerate(items))
            head = list(islice(rows, DETECT_SAMPLE_ROWS))
    format = "columns" if spec else format or detect_format([row for row, _ in head])
    cut_before_any_row = all(isinstance(row, Unreadable) for row, _ in head) and head[-1][0].reason == "truncated"
    if format is None and not cut_before_any_row:  # a file cut that early has no rows to detect from
        raise InputError(_undetected(head, container), file=str(path), hint="force one with --format "
                         + " | ".join(f"{name} ({'+'.join(sorted(keys))})" for name, keys in SIGNATURES.items())
                         + ", or map the fields with --columns, e.g. --columns prompt=question,response=answer")
    stats.files.append({**file_stats, "format": format})
    bytes_before = stats.bytes_read
    rows = chain(head, rows)
    if format == "oasst":  # flat message rows: rebuild each tree from its consecutive rows
        rows = _oasst_trees(rows)
        format = "oasst_tree"

    def reject(reason: str, detail: str, row: Any, source: dict, **extra: Any) -> None:
        stats.rejected[reason] += 1
        if options.strict:
            raise InputError(f"{reason}: {detail}", file=str(path), line=source.get("line"),
                             offset=source.get("offset"), index=source.get("index"),
                             hint="without --strict such rows go to the rejects file and the run goes on")
        if on_reject is not None:
            on_reject(make_reject(row, stage="ingest", operator="read", reason=reason, detail=detail,
                                  source=source, **extra))

    def converted() -> Iterator[tuple[dict, Any]]:
        """``(record, original)``: the original row is what a reject of a one-record row keeps."""
        for row, position in rows:
            stats.rows += 1
            if counters and on_progress and stats.rows % PROGRESS_EVERY_ROWS == 0:
                stats.bytes_read = bytes_before + counters[0].bytes_read
                on_progress(stats.bytes_read)
            source = {"file": str(path), **position, "format": format}
            if isinstance(row, Unreadable):
                if row.reason == "truncated":  # the incomplete tail counts as a row read, and as a reject
                    _truncated(row, source, path, container, options.salvage)
                    stats.unreadable_bytes += row.unreadable_bytes
                reject(row.reason, row.detail, row.raw, source, value=row.unreadable_bytes or None)
                continue
            try:
                records = to_records(row, format, source, options.role_map, spec)
            except RowProblem as problem:
                reject(problem.reason, problem.detail, row, source)
                continue
            for record in records:
                yield record, (row if len(records) == 1 else record)

    for record, original in repair_records(converted(), options.repairs, stats.repaired):
        problems = [p for p in conversation_problems(record["messages"]) if p[0] not in options.allow]
        if problems:
            (reason, first), *others = problems  # the first problem is the reason; all are in the detail
            detail = "; ".join([first or reason] + [f"{code}: {text}" if text else code for code, text in others])
            reject(reason, detail, original, record["source"])
            continue
        stats.records += 1
        yield record
    if counters:
        stats.bytes_read = bytes_before + counters[0].bytes_read
    elif path.is_file():
        stats.bytes_read += path.stat().st_size
    if on_progress:
        on_progress(stats.bytes_read)


def _undetected(head: list[tuple[Any, dict]], container: str) -> str:
    """Why no format fits the first rows: their keys, or that they are not objects at all."""
    keys = sorted({k for row, _ in head if isinstance(row, dict) for k in row})
    if keys and container == "json_object":
        return (f"this file is one JSON object with keys {keys} and no key holds a list of rows alone: name "
                "the one that does with --field KEY")
    if keys:
        return f"cannot tell the format of this {container} file: its rows have keys {keys}"
    if container == "jsonl":
        return ("the first lines are not JSON objects: expected one object per line (JSONL), a top-level "
                "array of objects, or one object holding the rows (--field KEY)")
    return f"cannot tell the format of this {container} file: its first rows are not objects"


def _fits(row: Any, format: str | None, spec: Mapping[str, Any] | None) -> bool:
    """Whether a row already is a record: the mapped columns, the given format's keys, or any format's."""
    if not isinstance(row, dict):
        return False
    if spec is not None:
        return spec.get("messages", spec.get("prompt")) in row
    return SIGNATURES[format] <= row.keys() if format else detect_format([row]) is not None


def _refuse_python_literals(head: list[tuple[Any, dict]], path: Path) -> None:
    """Lines like ``{'a': 1}`` are Python's repr of a dict, not JSON: say so, and how to read them."""
    for row, position in head:
        if isinstance(row, Unreadable) and row.reason == "invalid_json" and str(row.raw).lstrip().startswith("{'"):
            raise InputError("this line is a Python dict literal (single quotes), not JSON", file=str(path),
                             line=position.get("line"), hint="--python-literals reads such lines safely with "
                             "ast.literal_eval (it runs no code); or rewrite the file with json.dumps")


def _fail_fast_on_truncation(path: Path) -> None:
    """A cut JSON array fails before any record is converted or written: one parse-only pass finds the cut."""
    for row, position in iter_rows(path, "json"):
        if isinstance(row, Unreadable) and row.reason == "truncated":
            _truncated(row, position, path, "json", salvage=False)


def _truncated(tail: Unreadable, source: dict, path: Path, container: str, salvage: bool) -> None:
    """Stop with a precise error unless salvaging; the complete records before it were already read."""
    if salvage:
        return
    complete = source["index"]
    what = "JSON array" if container == "json" else f"{container} file"
    raise InputError(f"truncated {what}: {tail.detail}", file=str(path), line=source.get("line"),
                     offset=source.get("offset"), index=complete,
                     hint=f"--salvage keeps the {complete:,} complete records and counts the cut tail "
                          f"({tail.unreadable_bytes:,} unreadable bytes) as a reject (oid convert, inspect, curate, "
                          "report and review take --salvage)")


def _oasst_trees(rows: Iterator[tuple[Any, dict]]) -> Iterator[tuple[Any, dict]]:
    """Group consecutive OASST message rows by ``message_tree_id`` into one tree row each."""
    def tree_id(item: tuple[Any, dict]) -> Any:
        row = item[0]
        return row.get("message_tree_id") if isinstance(row, dict) else id(item)

    for _, group in groupby(rows, key=tree_id):
        items = list(group)
        messages = [row for row, _ in items if isinstance(row, dict)]
        if not messages:
            yield items[0]
            continue
        try:
            yield oasst_tree_from_messages(messages), items[0][1]
        except RowProblem as problem:
            yield Unreadable(problem.reason, problem.detail, messages), items[0][1]
