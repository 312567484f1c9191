"""The ingest commands as library functions: ``convert``, ``inspect`` and ``validate`` return summaries."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from oidkit.atomic import atomic_path
from oidkit.core.language import LanguageIdentifier, record_language
from oidkit.io.files import expand_paths
from oidkit.io.formats import RowProblem
from oidkit.io.outputs import incomplete_outputs, refuse_overwriting_inputs
from oidkit.io.read import ReadStats, read_records
from oidkit.io.repair import REPAIRS
from oidkit.io.writers import check_dataset_info, stale_shards, write_dataset_info, write_records
from oidkit.records import make_reject

LANGUAGE_SAMPLE = 300
PROBLEM_EXAMPLES = 5


def input_bytes(paths: str | Path | list) -> int:
    """Bytes on disk of everything ``paths`` names, the total of a progress bar."""
    total = 0
    for path in expand_paths(paths):
        files = path.rglob("*") if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def rejects_path_for(out: str | Path) -> Path:
    """Beside the output, its last suffix (and .gz / .zst) replaced: ``data.parquet`` -> ``data.rejects.jsonl``,
    ``x.sharegpt.json.gz`` -> ``x.sharegpt.rejects.jsonl``."""
    out = Path(out)
    stem = out.stem if out.suffix.lower() not in (".gz", ".zst") else Path(out.stem).stem
    return out.with_name(stem + ".rejects.jsonl")


def convert(
    inputs: str | Path | list,
    out: str | Path,
    *,
    in_format: str | None = None,
    out_format: str | None = None,
    shard_size: int | None = None,
    salvage: bool = False,
    strict: bool = False,
    role_map: Mapping[str, str] | None = None,
    rejects: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    allow: Iterable[str] = (),
    repairs: str | Iterable[str] = REPAIRS,
    columns: str | Mapping[str, Any] | None = None,
    field: str | None = None,
    python_literals: bool = False,
    dataset_info: bool = False,
) -> dict:
    """Read ``inputs`` in any format, write ``out``; bad rows to the rejects file. Returns a summary.

    ``repairs``, ``columns``, ``field`` and ``python_literals`` are as in ``read_records``. ``dataset_info``
    also writes (or updates) the LLaMA-Factory ``dataset_info.json`` entry of an Alpaca, ShareGPT or OpenAI
    ``out``. Outputs are refused before anything is written when one of them is an input, and appear only
    when complete (``io.outputs``): on an error or a kill nothing half-written is left under a final name.
    """
    started, stats = time.perf_counter(), ReadStats()
    out = Path(out)
    if dataset_info:
        check_dataset_info(out, out_format, shard_size)
    rejects_path = Path(rejects) if rejects else rejects_path_for(out)
    existing_shards = stale_shards(out, 0) if shard_size else ()
    refuse_overwriting_inputs([out, rejects_path, *existing_shards], inputs)
    with atomic_path(rejects_path) as rejects_temp, open(rejects_temp, "wb") as rejects_file:
        def keep_reject(reject: dict) -> None:
            rejects_file.write(orjson.dumps(reject, option=orjson.OPT_NON_STR_KEYS) + b"\n")

        def unwritable(record: dict, problem: RowProblem) -> None:
            stats.rejected[problem.reason] += 1
            keep_reject(make_reject(record, stage="ingest", operator="write", reason=problem.reason,
                                    detail=problem.detail))

        records = read_records(inputs, format=in_format, salvage=salvage, strict=strict, role_map=role_map,
                               on_reject=keep_reject, stats=stats, on_progress=on_progress, allow=allow,
                               repairs=repairs,
                               columns=columns, field=field, python_literals=python_literals)
        fields: set[str] = set()
        try:
            outputs = write_records(records, out, format=out_format, shard_size=shard_size, on_reject=unwritable,
                                    fields=fields)
        except OSError as error:  # a failed write (disk full, ...) does not name its file: name the output
            if error.filename is None:
                error.filename = str(out)
            raise
    written = stats.records - stats.rejected.get("unsupported_by_format", 0)
    info = str(write_dataset_info(outputs[0], fields, out_format)) if dataset_info else None
    return {**stats.as_dict(), "written": written, "outputs": [str(p) for p in outputs],
            "rejects_file": str(rejects_path), "dataset_info": info, "seconds": round(time.perf_counter() - started, 3)}


def inspect(
    inputs: str | Path | list,
    *,
    format: str | None = None,
    salvage: bool = False,
    role_map: Mapping[str, str] | None = None,
    samples: int = 3,
    languages: bool = True,
    on_progress: Callable[[int], None] | None = None,
    allow: Iterable[str] = (),
    repairs: str | Iterable[str] = REPAIRS,
    columns: str | Mapping[str, Any] | None = None,
    field: str | None = None,
    python_literals: bool = False,
) -> dict:
    """Counts, roles, languages, example records and problems of a dataset, in one streaming pass."""
    stats, problems = ReadStats(), []
    turns, roles, spellings = 0, Counter(), Counter()
    examples: list[dict] = []
    sampled: list[dict] = []
    rng = random.Random(0)

    def note_problem(reject: dict) -> None:
        if len(problems) < PROBLEM_EXAMPLES:
            problems.append(_problem_line(reject))

    for n, record in enumerate(read_records(inputs, format=format, salvage=salvage, role_map=role_map,
                                            on_reject=note_problem, stats=stats, on_progress=on_progress,
                                            allow=allow, repairs=repairs, columns=columns, field=field,
                                            python_literals=python_literals)):
        turns += len(record["messages"])
        for message in record["messages"]:
            roles[message["role"]] += 1
            if message.get("source_role"):
                spellings[message["source_role"]] += 1
        if len(examples) < samples:
            examples.append(record)
        if len(sampled) < LANGUAGE_SAMPLE:  # reservoir sampling: a uniform sample without knowing the total
            sampled.append(record)
        elif (slot := rng.randrange(n + 1)) < LANGUAGE_SAMPLE:
            sampled[slot] = record
    incomplete = incomplete_outputs(expand_paths(inputs))
    return {**stats.as_dict(), "turns": turns, "roles": dict(roles.most_common()),
            "role_spellings": dict(spellings.most_common()),
            "languages": _languages(sampled) if languages else {},
            "language_sample": len(sampled) if languages else 0,
            "examples": examples, "problem_examples": incomplete + problems, "incomplete": incomplete}


def _languages(records: list[dict]) -> dict[str, int]:
    """Records per language by the one rule (oidkit.core.language); too little text counts as unknown."""
    identifier = LanguageIdentifier()
    return dict(Counter(record_language(record, identifier) for record in records).most_common())


def _problem_line(reject: dict) -> dict:
    source = reject.get("source", {})
    where = {k: source[k] for k in ("file", "line", "offset", "index") if source.get(k) is not None}
    return {"reason": reject["reason"], "detail": reject["detail"], **where}


def validate(
    inputs: str | Path | list,
    *,
    format: str | None = None,
    role_map: Mapping[str, str] | None = None,
    max_listed: int = 1000,
    on_progress: Callable[[int], None] | None = None,
    allow: Iterable[str] = (),
    repairs: str | Iterable[str] = REPAIRS,
    columns: str | Mapping[str, Any] | None = None,
    field: str | None = None,
    python_literals: bool = False,
) -> dict[str, Any]:
    """Every problem of a dataset with its position (the first ``max_listed`` listed, all counted).

    A truncated file is one more problem here, not an error: validation reports, it does not stop. So is a
    file that is not a complete output (``incomplete``): a leftover temporary file, a shard set without its
    manifest.
    """
    stats, problems = ReadStats(), []

    def note_problem(reject: dict) -> None:
        if len(problems) < max_listed:
            problems.append(_problem_line(reject))

    for _ in read_records(inputs, format=format, salvage=True, role_map=role_map, on_reject=note_problem,
                          stats=stats, on_progress=on_progress, allow=allow, repairs=repairs, columns=columns,
                          field=field, python_literals=python_literals):
        pass
    incomplete = incomplete_outputs(expand_paths(inputs))
    return {**stats.as_dict(), "problems": incomplete + problems, "incomplete": incomplete,
            "ok": not stats.rejected and not incomplete}
