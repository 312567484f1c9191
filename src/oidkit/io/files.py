"""Finding input files and reading their rows, whatever the container: JSON array, JSONL, CSV, Parquet,
Arrow / a Hugging Face ``save_to_disk`` folder; plain, gzip or zstd.

Everything is decided from content (magic bytes, first non-blank byte, ``state.json``), never from file
names. Rows come out as ``(value, position)`` where ``value`` is the parsed row or an ``Unreadable``.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from oidkit.errors import InputError
from oidkit.io.jsonstream import WHITESPACE, Unreadable, iter_json_array, iter_jsonl

CONTAINERS = ("json", "jsonl", "csv", "parquet", "arrow")
GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC, ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC = b"PAR1", b"ARROW1", b"\xff\xff\xff\xff"
SURROGATE = re.compile("[\udc80-\udcff]")  # what undecodable bytes become under errors="surrogateescape"
ROWS_PER_BATCH = 1024


class CountingReader(io.RawIOBase):
    """A file wrapper counting the (compressed) bytes read, for progress bars by bytes."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.bytes_read = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def expand_paths(paths: str | Path | list) -> list[Path]:
    """Files and ``save_to_disk`` folders named by ``paths``: files, folders (walked in sorted order) or globs."""
    found: list[Path] = []
    for item in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(item)
        matches = [path] if path.exists() else [Path(m) for m in sorted(glob.glob(str(item), recursive=True))]
        if not matches:
            raise InputError("no such file, folder or glob match", file=str(item),
                             hint="check the path; quote globs so the shell does not expand them")
        for path in matches:
            found.extend(_folder_files(path) if path.is_dir() else [path])
    return found


def _folder_files(folder: Path) -> list[Path]:
    """Data files of a folder of shards, skipping hidden files (temporary files of unfinished writes among them),
    rejects side files (``*rejects.jsonl``) and shard manifests (``*.shards.json``)."""
    if is_hf_folder(folder):
        return [folder]
    files = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")) or path.name.endswith(("rejects.jsonl", ".shards.json")):  # side files
            continue
        files.extend([path] if path.is_file() else _folder_files(path))
    return files


def is_hf_folder(path: Path) -> bool:
    """A ``datasets.Dataset.save_to_disk`` (``state.json``) or ``DatasetDict`` (``dataset_dict.json``) folder."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def hf_arrow_files(folder: Path) -> list[tuple[Path, str | None]]:
    """``(arrow file, split)`` of a ``save_to_disk`` folder, in the order the dataset lists them."""
    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
        return [(f, split) for split in splits for f, _ in hf_arrow_files(folder / split)]
    state = json.loads((folder / "state.json").read_text())
    return [(folder / entry["filename"], state.get("_split")) for entry in state["_data_files"]]


def open_binary(path: Path) -> tuple[BinaryIO, CountingReader]:
    """``(decompressed stream, byte counter of the file on disk)``; gzip and zstd found by magic bytes."""
    counter = CountingReader(open(path, "rb"))  # noqa: SIM115 - closed with the returned stream
    raw = io.BufferedReader(counter, buffer_size=1 << 20)
    magic = raw.peek(4)[:4]
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw), counter
    if magic == ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return io.BufferedReader(reader, buffer_size=1 << 20), counter
    return raw, counter


def sniff_container(path: Path) -> str:
    """The container of a file from its first bytes: json (array), jsonl, csv, parquet or arrow."""
    if is_hf_folder(path):
        return "arrow"
    stream, counter = open_binary(path)
    with counter, stream:  # gzip does not close the file it reads from: close both
        head = stream.read(1 << 16)
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith((ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC)):
        return "arrow"
    first = head.lstrip(WHITESPACE)[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    return "jsonl" if not first else "csv"  # an empty file reads as zero JSONL rows


def array_left_open(path: Path) -> bool:
    """Whether an uncompressed JSON array file does not end in ``]``: read from its tail in an instant."""
    with open(path, "rb") as f:
        if f.read(4).startswith((GZIP_MAGIC, ZSTD_MAGIC)):
            return False  # compressed: only a full read can tell
        f.seek(max(0, path.stat().st_size - 4096))
        return not f.read().rstrip(WHITESPACE).endswith(b"]")


def iter_rows(path: Path, container: str, counter_out: list | None = None) -> Iterator[tuple[Any, dict]]:
    """``(row or Unreadable, position)`` for every row of one file or ``save_to_disk`` folder.

    ``counter_out`` receives the file's :class:`CountingReader` (when there is one) so callers can report
    progress in bytes.
    """
    if container == "parquet":
        yield from _iter_parquet(path)
    elif container == "arrow":
        for arrow_file, split in (hf_arrow_files(path) if path.is_dir() else [(path, None)]):
            for row, position in _iter_arrow(arrow_file):  # positions name the shard, where the index restarts
                yield row, {"file": str(arrow_file), **position, **({"split": split} if split else {})}
    else:
        stream, counter = open_binary(path)
        if counter_out is not None:
            counter_out.append(counter)
        with counter, stream:
            if container == "json":
                yield from iter_json_array(stream)
            elif container == "jsonl":
                for index, (row, position) in enumerate(iter_jsonl(stream)):
                    yield row, {**position, "index": index}
            else:
                yield from _iter_csv(stream)


def _iter_csv(stream: BinaryIO) -> Iterator[tuple[Any, dict]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(text)
    line = reader.line_num + 1
    for index, row in enumerate(reader):
        bad = next((value for value in row.values() if isinstance(value, str) and SURROGATE.search(value)), None)
        if bad is not None:
            raw = json.dumps({k: v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                              if isinstance(v, str) else v for k, v in row.items()}, ensure_ascii=False)
            yield Unreadable("invalid_utf8", "a cell is not valid UTF-8", raw), {"line": line, "index": index}
        else:
            yield row, {"line": line, "index": index}
        line = reader.line_num + 1


def _iter_parquet(path: Path) -> Iterator[tuple[Any, dict]]:
    import pyarrow.parquet as pq

    index = 0
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=ROWS_PER_BATCH):
            for row in batch.to_pylist():
                yield row, {"index": index}
                index += 1


def _iter_arrow(path: Path) -> Iterator[tuple[Any, dict]]:
    import pyarrow as pa

    with open(path, "rb") as f:
        reader = pa.ipc.open_file(f) if f.read(6) == ARROW_FILE_MAGIC else None
        f.seek(0)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if reader else pa.ipc.open_stream(f)
        index = 0
        for batch in batches:
            for row in batch.to_pylist():
                yield row, {"index": index}
                index += 1
