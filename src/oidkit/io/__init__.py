"""Reading and writing records in every supported format.

The public API other parts of oidkit use (keep these signatures stable):

- ``read_records(paths, *, format=None, salvage=False, strict=False, role_map=None, on_reject=None)``
  yields canonical records from files, folders, globs or zip archives; bad rows go to ``on_reject`` (a
  callable taking one reject dict, see ``oidkit.records.make_reject``) or raise with ``strict``.
  ``columns=`` / ``field=`` / ``python_literals=`` read other field names, wrapped rows and Python-literal
  lines (``io.mapping``).
- ``write_records(records, path, *, format=None, shard_size=None, fields=None) -> list[Path]`` writes records,
  the format inferred from the suffix when not given.
- ``read_jsonl(path)`` / ``write_jsonl(path, rows)`` for plain JSONL side files (rejects, stats).
- ``convert`` / ``inspect`` / ``validate``: the ``oid`` ingest commands as functions returning summaries.

Formats, containers and the canonical record are described in ``docs/ingest.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from oidkit.atomic import atomic_path
from oidkit.errors import InputError
from oidkit.io.formats import READ_FORMATS
from oidkit.io.ingest import convert, inspect, validate
from oidkit.io.read import INGEST_REASONS, ReadStats, read_records
from oidkit.io.writers import WRITE_FORMATS, write_records

__all__ = ["INGEST_REASONS", "READ_FORMATS", "WRITE_FORMATS", "ReadStats", "convert", "inspect", "read_jsonl",
           "read_records", "validate", "write_jsonl", "write_records"]


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Rows of a JSONL file, skipping blank lines; a line that is not JSON is an ``InputError`` naming it."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise InputError(f"not valid JSON ({e.msg}, column {e.colno})", file=str(path),
                                     line=number) from None


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as JSONL (UTF-8, non-ASCII kept readable), atomically; returns the number written."""
    n = 0
    with atomic_path(path) as temp, open(temp, "wb") as f:
        for row in rows:
            f.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))
            f.write(b"\n")
            n += 1
    return n
