"""Records -> tokenised examples, cached on disk and computed in parallel.

The cache key is a digest of the tokenizer, the chat template, the encoding options and the content of
the input files, so a second run on the same data loads a Parquet file instead of re-tokenising.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from oidkit.io import read_records
from oidkit.train.templates import encode_record

CHUNK_SIZE = 512  # records per task handed to a worker process


def tokenized_cache_root(cache_dir: str | None = None) -> Path:
    """``cache_dir`` or ``$OIDKIT_CACHE/tokenized`` (default ``~/.cache/oidkit/tokenized``)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("OIDKIT_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "oidkit") / "tokenized"


def file_digest(paths: str | list[str]) -> str:
    """Digest of the bytes of every input file (folders: every file inside, sorted)."""
    digest = hashlib.blake2b(digest_size=16)
    for entry in [paths] if isinstance(paths, str) else paths:
        path = Path(entry)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.name).encode())
            with open(file, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """Digest of the tokenizer's full definition (vocabulary, merges, normaliser, special tokens)."""
    backend = tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer") else repr(tokenizer)
    return hashlib.blake2b(backend.encode(), digest_size=16).hexdigest()


def _encode_chunk(records: list[dict], tokenizer: Any, template: str, options: dict) -> list[tuple[dict | None, str]]:
    return [encode_record(r, tokenizer, template, **options) for r in records]


def _chunks(records: list[dict], size: int) -> list[list[dict]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def tokenize_records(
    records: list[dict], tokenizer: Any, template: str, *, num_proc: int = 1, progress: Any = None, **options: Any
) -> tuple[list[dict], dict]:
    """Encode records (in ``num_proc`` processes); returns ``(examples, counts)``.

    ``counts`` has ``records``, ``ok``, ``truncated``, ``truncated_answer``, ``dropped`` and ``tokens``.
    """
    work = partial(_encode_chunk, tokenizer=tokenizer, template=template, options=options)
    chunks = _chunks(records, CHUNK_SIZE)
    if num_proc > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(num_proc) as pool:
            results = pool.map(work, chunks)
            encoded = [item for chunk in _track(results, len(chunks), progress) for item in chunk]
    else:
        encoded = [item for chunk in _track(map(work, chunks), len(chunks), progress) for item in chunk]
    counts = Counter(status for _, status in encoded)
    examples = [example for example, _ in encoded if example is not None]
    summary = {"records": len(records), **{k: counts.get(k, 0) for k in ("ok", "truncated", "truncated_answer",
                                                                           "dropped")}}
    summary["tokens"] = sum(len(e["input_ids"]) for e in examples)
    return examples, summary


def _track(results: Any, total: int, progress: Any) -> Any:
    for i, result in enumerate(results, 1):
        yield result
        if progress:
            progress(i, total)


def load_tokenized(
    paths: str | list[str], tokenizer: Any, template: str, *, max_records: int | None = None, num_proc: int = 1,
    cache_dir: str | None = None, progress: Any = None, **options: Any,
) -> tuple[list[dict], dict]:
    """Tokenised examples of the records in ``paths``, from the cache when this exact job ran before.

    Returns ``(examples, counts)``; ``counts["cache"]`` is ``hit`` or ``miss``.
    """
    key_parts = [tokenizer_digest(tokenizer), template, sorted(options.items()), max_records, file_digest(paths)]
    key = hashlib.blake2b(orjson.dumps(key_parts, default=str), digest_size=16).hexdigest()
    folder = tokenized_cache_root(cache_dir) / key
    if (folder / "counts.json").exists():
        table = pq.read_table(folder / "examples.parquet")
        examples = [{"input_ids": ids, "labels": labels} for ids, labels in
                    zip(table["input_ids"].to_pylist(), table["labels"].to_pylist(), strict=True)]
        return examples, {**orjson.loads((folder / "counts.json").read_bytes()), "cache": "hit"}
    records = []
    for record in read_records(paths):
        if max_records is not None and len(records) >= max_records:
            break
        records.append(record)
    examples, counts = tokenize_records(records, tokenizer, template, num_proc=num_proc, progress=progress, **options)
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"input_ids": pa.array([e["input_ids"] for e in examples], pa.list_(pa.int32())),
                      "labels": pa.array([e["labels"] for e in examples], pa.list_(pa.int32()))})
    pq.write_table(table, folder / "examples.parquet")
    (folder / "counts.json").write_bytes(orjson.dumps(counts))  # written last: marks the entry complete
    return examples, {**counts, "cache": "miss"}
