"""Records -> tokenised examples, cached on disk and computed in parallel.

The cache key is a digest of the tokenizer, the chat template, the encoding options and the content of
the input files, so a second run on the same data loads a Parquet file instead of re-tokenising.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from oidkit.atomic import atomic_path, write_atomic
from oidkit.core.chat import RENDERING_VERSION, encode_record
from oidkit.errors import InputError
from oidkit.io import read_records
from oidkit.io.files import expand_paths
from oidkit.io.repair import REPAIRS

CHUNK_SIZE = 512  # records per task handed to a worker process


def tokenized_cache_root(cache_dir: str | None = None) -> Path:
    """``cache_dir`` or ``$OIDKIT_CACHE/tokenized`` (default ``~/.cache/oidkit/tokenized``)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("OIDKIT_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "oidkit") / "tokenized"


def file_digest(paths: str | list[str]) -> str:
    """Digest of the bytes of every file the records are read from (``io.files.expand_paths``: files,
    folders of shards, globs; a ``save_to_disk`` folder counts with every file inside), so edited data is
    never served from a stale cache."""
    try:
        entries = expand_paths(paths)
    except InputError as e:
        raise InputError("training data not found", file=e.file,
                         hint="check data.train / data.validation in the config (paths are relative to the "
                              "folder you run oid from)") from None
    digest = hashlib.blake2b(digest_size=16)
    for entry in entries:
        for file in sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [entry]:
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


def tokenize_records(
    records: Iterable[dict], tokenizer: Any, template: str, *, num_proc: int = 1, max_examples: int | None = None,
    progress: Any = None, **options: Any,
) -> tuple[list[dict], dict]:
    """Encode records (in ``num_proc`` processes), stopping once ``max_examples`` were kept.

    Returns ``(examples, counts)``; ``counts`` has ``records`` (read), ``ok``, ``truncated``,
    ``truncated_answer``, ``dropped`` and ``tokens``.
    """
    work = partial(_encode_chunk, tokenizer=tokenizer, template=template, options=options)
    records = iter(records)
    examples: list[dict] = []
    counts: Counter = Counter()
    pool = ProcessPoolExecutor(num_proc) if num_proc > 1 else None
    try:
        while max_examples is None or len(examples) < max_examples:
            # one chunk per worker per round, so reading stops soon after enough examples are kept
            chunks = [c for c in (list(islice(records, CHUNK_SIZE)) for _ in range(num_proc)) if c]
            if not chunks:
                break
            for chunk in pool.map(work, chunks) if pool else map(work, chunks):
                for example, status in chunk:
                    counts["records"] += 1
                    counts[status] += 1
                    if example is not None and (max_examples is None or len(examples) < max_examples):
                        examples.append(example)
            if progress:
                progress(counts["records"], len(examples))
    finally:
        if pool:
            pool.shutdown()
    summary = {k: counts.get(k, 0) for k in ("records", "ok", "truncated", "truncated_answer", "dropped")}
    summary["tokens"] = sum(len(e["input_ids"]) for e in examples)
    return examples, summary


def load_tokenized(
    paths: str | list[str], tokenizer: Any, template: str, *, max_examples: int | None = None, num_proc: int = 1,
    cache_dir: str | None = None, progress: Any = None, **options: Any,
) -> tuple[list[dict], dict]:
    """Tokenised examples of the records in ``paths``, from the cache when this exact job ran before.

    Returns ``(examples, counts)``; ``counts["cache"]`` is ``hit`` or ``miss``.
    """
    # the repairs read_records applies shape the records too: a cache from before them must not be reused
    key_parts = [tokenizer_digest(tokenizer), template, sorted(options.items()), max_examples, file_digest(paths),
                 REPAIRS, RENDERING_VERSION]
    key = hashlib.blake2b(orjson.dumps(key_parts, default=str), digest_size=16).hexdigest()
    folder = tokenized_cache_root(cache_dir) / key
    if (folder / "counts.json").exists():
        table = pq.read_table(folder / "examples.parquet")
        examples = [{"input_ids": ids, "labels": labels} for ids, labels in
                    zip(table["input_ids"].to_pylist(), table["labels"].to_pylist(), strict=True)]
        return examples, {**orjson.loads((folder / "counts.json").read_bytes()), "cache": "hit"}
    examples, counts = tokenize_records(read_records(paths), tokenizer, template, num_proc=num_proc,
                                        max_examples=max_examples, progress=progress, **options)
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"input_ids": pa.array([e["input_ids"] for e in examples], pa.list_(pa.int32())),
                      "labels": pa.array([e["labels"] for e in examples], pa.list_(pa.int32()))})
    with atomic_path(folder / "examples.parquet") as temp:
        pq.write_table(table, temp)
    write_atomic(folder / "counts.json", orjson.dumps(counts))  # written last: marks the entry complete
    return examples, {**counts, "cache": "miss"}
