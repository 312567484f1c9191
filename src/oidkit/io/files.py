"""Finding input files and reading their rows, whatever the container: JSON array, JSONL, a JSON object
wrapping the rows, CSV, Parquet, Arrow / a Hugging Face ``save_to_disk`` folder; plain, gzip or zstd; alone
or as the members of a zip archive.

Everything is decided from content (magic bytes, first non-blank byte, ``state.json``), never from file
names. Rows come out as ``(value, position)`` where ``value`` is the parsed row or an ``Unreadable``.
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from oidkit.errors import InputError, os_error_fix
from oidkit.io.jsonstream import WHITESPACE, Unreadable, iter_json_array, iter_jsonl, parse_span

CONTAINERS = ("json", "json_object", "jsonl", "csv", "parquet", "arrow")
GZIP_MAGIC, ZSTD_MAGIC, ZIP_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PK\x03\x04"
PARQUET_MAGIC, ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC = b"PAR1", b"ARROW1", b"\xff\xff\xff\xff"
SURROGATE = re.compile("[\udc80-\udcff]")  # what undecodable bytes become under errors="surrogateescape"
ROWS_PER_BATCH = 1024
# byte order marks of the UTF-16/32 text some tools export (the longer UTF-32 marks first: they start alike)
WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
             (codecs.BOM_UTF16_BE, "utf-16"))


class CountingReader(io.RawIOBase):
    """A file wrapper counting the (compressed) bytes read, for progress bars by bytes."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.bytes_read = raw, 0
        self.cut: str | None = None  # set by Decompressed: why and where the compressed data stopped early

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class Decompressed(io.RawIOBase):
    """The decompressed bytes of a gzip or zstd file, every member or frame.

    Cut or corrupt compressed data ends the stream early instead of raising mid-record: the counter's
    ``cut`` then says what happened and at which compressed byte, so the reader can report the rows
    before it as complete and the rest as a ``truncated`` tail (or salvage them).
    """

    def __init__(self, counter: CountingReader, kind: str):
        self.counter, self.kind = counter, kind
        self.decoder, self.pending = self._decoder(), b""

    def _decoder(self) -> Any:
        return zlib.decompressobj(wbits=31) if self.kind == "gzip" else zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and self.counter.cut is None:
            data = self.decoder.unused_data or self.counter.read(1 << 13)  # small: corruption loses little
            if not data:
                if not self.decoder.eof and self.counter.bytes_read:
                    self.counter.cut = (f"the {self.kind} data ends before its end marker at compressed byte "
                                        f"{self.counter.bytes_read:,} (the file is cut)")
                break
            if self.decoder.eof:  # the next gzip member or zstd frame
                self.decoder = self._decoder()
            try:
                self.pending = self.decoder.decompress(data)
            except (zlib.error, zstandard.ZstdError) as error:
                self.counter.cut = (f"the {self.kind} data is corrupt near compressed byte "
                                    f"{self.counter.bytes_read:,} ({error})")
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


class Transcoded(io.RawIOBase):
    """UTF-8 bytes of a UTF-16 or UTF-32 text stream (with a byte order mark), so every reader sees UTF-8."""

    def __init__(self, raw: BinaryIO, encoding: str):
        # bad code units become visible \xNN text, which no JSON or CSV row parses as: the row is rejected
        self.text = io.TextIOWrapper(raw, encoding=encoding, errors="backslashreplace", newline="")
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.pending:
            self.pending = self.text.read(1 << 18).encode("utf-8", "surrogateescape")
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


def _checked(path: Path) -> Path:
    """``path`` if it can be looked at; a dangling link, a link loop or a forbidden folder is an InputError."""
    try:
        path.stat()
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror}", file=str(path), hint=os_error_fix(error)) from None
    return path


def expand_paths(paths: str | Path | list) -> list[Path]:
    """Files and ``save_to_disk`` folders named by ``paths``: files, folders (walked in sorted order) or globs."""
    found: list[Path] = []
    for item in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(item)
        matches = [path] if path.exists() else [Path(m) for m in sorted(glob.glob(str(item), recursive=True))]
        if not matches:
            raise InputError("no such file, folder or glob match", file=str(item),
                             hint="check the path; quote globs so the shell does not expand them")
        for path in map(_checked, matches):
            found.extend(_folder_files(path, set()) if path.is_dir() else [path])
    return found


def _folder_files(folder: Path, walked: set[Path]) -> list[Path]:
    """Data files of a folder of shards, skipping hidden files (temporary files of unfinished writes among them),
    rejects side files (``*rejects.jsonl``) and shard manifests (``*.shards.json``).

    ``walked`` holds the real paths of the folders above: a link back to one of them is a loop, an error
    rather than an endless walk or files read twice.
    """
    real = folder.resolve()
    if real in walked:
        raise InputError(f"folder symbolic link loop: it leads back to {real}", file=str(folder),
                         hint="remove the link, or name the folders to read explicitly")
    if is_hf_folder(folder):
        return [folder]
    files = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise InputError(f"cannot list the folder: {error.strerror}", file=str(folder),
                         hint=os_error_fix(error)) from None
    for path in entries:
        if path.name.startswith((".", "_")) or path.name.endswith(("rejects.jsonl", ".shards.json")):  # side files
            continue
        path = _checked(path)
        files.extend([path] if path.is_file() else _folder_files(path, walked | {real}))
    return files


def is_hf_folder(path: Path) -> bool:
    """A ``datasets.Dataset.save_to_disk`` (``state.json``) or ``DatasetDict`` (``dataset_dict.json``) folder."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def hf_arrow_files(folder: Path) -> list[tuple[Path, str | None]]:
    """``(arrow file, split)`` of a ``save_to_disk`` folder, in the order the dataset lists them."""
    if (folder / "dataset_dict.json").is_file():
        splits = _folder_index(folder / "dataset_dict.json", "splits")["splits"]
        return [(f, split) for split in splits for f, _ in hf_arrow_files(folder / split)]
    state = _folder_index(folder / "state.json", "_data_files")
    return [(folder / entry["filename"], state.get("_split")) for entry in state["_data_files"]]


def _folder_index(path: Path, key: str) -> dict:
    """The parsed ``state.json`` / ``dataset_dict.json`` of a ``save_to_disk`` folder, checked for ``key``."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InputError(f"not valid JSON ({error})", file=str(path),
                         hint="the save_to_disk folder is damaged: save the dataset again") from None
    if not isinstance(index, dict) or key not in index:
        raise InputError(f"expected an object with {key!r}", file=str(path),
                         hint="the save_to_disk folder is damaged: save the dataset again")
    return index


def archive_members(path: Path) -> list:
    """The data files a zip archive holds (as ``zipfile.Path``, named ``archive.zip/member``), or ``[path]``."""
    if not path.is_file():
        return [path]
    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:
            return [path]
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
    hidden = [name for name in names if any(part.startswith((".", "_")) for part in name.split("/"))]
    return [zipfile.Path(path, at=name) for name in names if name not in hidden]  # e.g. __MACOSX/, .DS_Store


def open_binary(path: Path | zipfile.Path) -> tuple[BinaryIO, CountingReader]:
    """``(UTF-8 byte stream, byte counter of the file on disk)``.

    gzip and zstd are found by magic bytes and decompressed (cut data ends the stream and sets
    ``counter.cut``); UTF-16/32 text with a byte order mark is transcoded to UTF-8.
    """
    try:
        counter = CountingReader(path.open("rb"))
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror}", file=str(path), hint=os_error_fix(error)) from None
    with path.open("rb") as head:
        magic = head.read(4)
    kind = "gzip" if magic.startswith(GZIP_MAGIC) else "zstd" if magic == ZSTD_MAGIC else None
    stream = io.BufferedReader(Decompressed(counter, kind) if kind else counter, buffer_size=1 << 20)
    start = stream.peek(4)[:4]
    encoding = next((name for bom, name in WIDE_BOMS if start.startswith(bom)), None)
    if encoding:
        stream = io.BufferedReader(Transcoded(stream, encoding), buffer_size=1 << 20)
    elif b"\x00" in start[:2] and not start.startswith((PARQUET_MAGIC, ARROW_STREAM_MAGIC)):
        counter.close()
        raise InputError("the file starts with NUL bytes: binary data, or UTF-16/UTF-32 text without a byte order mark",
                         file=str(path), offset=start.index(b"\x00"),
                         hint="convert it to UTF-8 first, e.g. iconv -f UTF-16LE -t UTF-8 in.json > in.utf8.json")
    return stream, counter


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
        return _jsonl_or_object(head, whole=len(head) < 1 << 16)
    return "jsonl" if not first else "csv"  # an empty file reads as zero JSONL rows


def _jsonl_or_object(head: bytes, whole: bool) -> str:
    """JSONL when one of the first two lines is a JSON value (or a Python literal line), else one JSON object
    spread over lines, e.g. ``{"data": [...]}`` pretty-printed."""
    lines = [line for line in head.lstrip(WHITESPACE).split(b"\n") if line.strip()]
    complete = lines if whole else lines[:-1]  # the last line of a partial head may be cut
    if not complete or complete[0].startswith(b"{'"):
        return "jsonl"
    return "jsonl" if any(not isinstance(parse_span(line), Unreadable) for line in complete[:2]) else "json_object"


def array_left_open(path: Path) -> bool:
    """Whether an uncompressed JSON array file does not end in ``]``: read from its tail in an instant."""
    with open(path, "rb") as f:
        if f.read(4).startswith((GZIP_MAGIC, ZSTD_MAGIC)):
            return False  # compressed: only a full read can tell
        f.seek(max(0, path.stat().st_size - 4096))
        return not f.read().rstrip(WHITESPACE).endswith(b"]")


def iter_rows(path: Path, container: str, counter_out: list | None = None,
              python_literals: bool = False) -> Iterator[tuple[Any, dict]]:
    """``(row or Unreadable, position)`` for every row of one file or ``save_to_disk`` folder.

    ``counter_out`` receives the file's :class:`CountingReader` (when there is one) so callers can report
    progress in bytes. A ``json_object`` file is one row, the whole object (see :func:`unwrap`).
    ``python_literals`` reads JSONL lines that are Python literals (``{'a': 1}``) with ``ast.literal_eval``.
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
                rows = iter_json_array(stream)
            elif container == "json_object":  # read whole: a wrapper object cannot be streamed row by row
                rows = iter([(parse_span(stream.read().strip(WHITESPACE)), {"line": 1, "offset": 0, "index": 0})])
            elif container == "jsonl":
                rows = ((row, {**position, "index": index})
                        for index, (row, position) in enumerate(iter_jsonl(stream, python_literals)))
            else:
                rows = _iter_csv(stream)
            yield from _end_at_cut(rows, counter, parsed_means_complete=container != "csv")


def _end_at_cut(rows: Iterator[tuple[Any, dict]], counter: CountingReader,
                parsed_means_complete: bool) -> Iterator[tuple[Any, dict]]:
    """Rows of a stream; where compressed data was cut or corrupt, the rows end in one ``truncated`` tail.

    The last row read before a cut may be incomplete: a JSON array already ends in its own tail; a JSONL
    line that does not parse becomes the tail; so does a last CSV row, which parses even when cut.
    """
    last = None
    for item in rows:
        if last is not None:
            yield last
        last = item
    if counter.cut is None:
        if last is not None:
            yield last
        return
    if last is None:  # cut before the first row
        yield Unreadable("truncated", counter.cut, ""), {"index": 0}
        return
    row, position = last
    if isinstance(row, Unreadable) and row.reason == "truncated":
        row.detail = f"{counter.cut}; {row.detail}"
        yield row, position
        return
    if isinstance(row, Unreadable) or not parsed_means_complete:
        raw = row.raw if isinstance(row, Unreadable) else json.dumps(row, ensure_ascii=False)
        yield Unreadable("truncated", counter.cut, raw, len(str(raw).encode())), position
        return
    yield last
    yield Unreadable("truncated", counter.cut, ""), {"index": position["index"] + 1}


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
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=ROWS_PER_BATCH):
                for row in batch.to_pylist():
                    yield row, {"index": index}
                    index += 1
    except (pa.ArrowException, OSError) as error:
        raise _unreadable_table("Parquet", path, index, error) from None


def _iter_arrow(path: Path) -> Iterator[tuple[Any, dict]]:
    import pyarrow as pa

    index = 0
    try:
        with open(path, "rb") as f:
            reader = pa.ipc.open_file(f) if f.read(6) == ARROW_FILE_MAGIC else None
            f.seek(0)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if reader \
                else pa.ipc.open_stream(f)
            for batch in batches:
                for row in batch.to_pylist():
                    yield row, {"index": index}
                    index += 1
    except (pa.ArrowException, OSError) as error:
        raise _unreadable_table("Arrow", path, index, error) from None


def _unreadable_table(kind: str, path: Path, index: int, error: Exception) -> InputError:
    """A cut or corrupt Parquet/Arrow file: its index (footer, schema) is what is lost, so nothing is salvaged."""
    if isinstance(error, OSError) and error.errno is not None:
        return InputError(f"cannot read: {error.strerror}", file=str(path), hint=os_error_fix(error))
    return InputError(f"not a readable {kind} file after {index:,} rows ({error})", file=str(path), index=index,
                      hint=f"the file is cut or corrupt: fetch or write it again ({kind} keeps its index at the end, "
                           "so a cut file cannot be salvaged)")


def unwrap(document: Any, field: str | None) -> tuple[list, str, str] | None:
    """``(rows, key, note)`` for the rows inside one JSON object, or ``None`` when it wraps no rows.

    ``field`` names the key (``a.b`` for nested keys); without it, the one top-level key holding a list of
    objects is taken, or, when every value is an object (``{"id1": {...}, "id2": {...}}``), the values,
    each given its key as ``id`` when it has none.
    """
    if not isinstance(document, dict):
        return None
    if field:
        value: Any = document
        for key in field.split("."):
            if not isinstance(value, dict) or key not in value:
                found = sorted(value) if isinstance(value, dict) else f"a {type(value).__name__}"
                raise InputError(f"--field {field}: no key {key!r}; found {found}")
            value = value[key]
        if isinstance(value, list):
            return value, field, f"rows read from the {field!r} list"
        if isinstance(value, dict):
            return _keyed_rows(value), field, f"rows read from the values of {field!r}, keyed by id"
        raise InputError(f"--field {field}: holds a {type(value).__name__}, expected a list of rows")
    lists = [key for key, value in document.items()
             if isinstance(value, list) and value and all(isinstance(row, dict) for row in value)]
    if len(lists) == 1:
        return document[lists[0]], lists[0], f"rows read from {lists[0]!r}, the only top-level key holding rows"
    if len(document) > 1 and all(isinstance(value, dict) for value in document.values()):
        return _keyed_rows(document), "", "rows read from the values of the top-level object, keyed by id"
    return None


def _keyed_rows(rows: dict) -> list:
    return [{"id": str(key), **row} if isinstance(row, dict) and "id" not in row else row for key, row in rows.items()]
