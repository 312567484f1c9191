"""Reading and writing records in every supported format.

The public API other parts of oidkit use (keep these signatures stable):

- ``read_records(paths, *, format=None, salvage=False, strict=False, role_map=None, on_reject=None)``
  yields canonical records from files, folders or globs; bad rows go to ``on_reject`` (a callable
  taking one reject dict, see ``oidkit.records.make_reject``) or raise with ``strict``.
- ``write_records(records, path, *, format=None, shard_size=None) -> list[Path]`` writes records,
  the format inferred from the suffix when not given.
- ``read_jsonl(path)`` / ``write_jsonl(path, rows)`` for plain JSONL side files (rejects, stats).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Rows of a JSONL file, skipping blank lines."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as JSONL (UTF-8, non-ASCII kept readable); returns the number written."""
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for row in rows:
            f.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))
            f.write(b"\n")
            n += 1
    return n


def read_records(
    paths: str | Path | list,
    *,
    format: str | None = None,
    salvage: bool = False,
    strict: bool = False,
    role_map: dict | None = None,
    on_reject: Callable[[dict], None] | None = None,
) -> Iterator[dict]:
    """Placeholder until the ingest readers land: canonical JSONL only."""
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        yield from read_jsonl(p)


def write_records(
    records: Iterable[dict], path: str | Path, *, format: str | None = None, shard_size: int | None = None
) -> list[Path]:
    """Placeholder until the writers land: canonical JSONL only."""
    write_jsonl(path, records)
    return [Path(path)]
