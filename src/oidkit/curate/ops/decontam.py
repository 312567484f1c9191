"""decontaminate: drop training records that share a long n-gram with an evaluation set.

Tokens are lower-cased words, and single characters for CJK text (so the default 13-gram is 13 words
of English or 13 characters of Chinese), after NFKC (CMMLU writes some characters as Kangxi radicals).
Benchmark items shorter than ``ngram`` tokens are not indexed: a short question ("下列说法正确的是")
would match ordinary text. Each reject names the benchmark, the item and the shared n-gram.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from oidkit.curate.base import Filter, OpConfig, register
from oidkit.curate.text import tokens
from oidkit.errors import ConfigError
from oidkit.io import read_jsonl
from oidkit.records import text


class BenchmarkSpec(BaseModel):
    """An evaluation set: a JSONL/CSV file (or glob) and the fields holding its prompts."""

    model_config = ConfigDict(extra="forbid")
    name: str
    path: str
    fields: list[str]
    id_field: str | None = None


# The real sets of ../shared/data, by name; paths are relative to that folder.
KNOWN_BENCHMARKS: dict[str, BenchmarkSpec] = {
    "gsm8k": BenchmarkSpec(name="gsm8k", path="gsm8k_test.jsonl", fields=["question"]),
    "self_instruct_eval": BenchmarkSpec(name="self_instruct_eval", path="self_instruct_user_oriented_eval.jsonl",
                                        fields=["instruction", "instances.input"], id_field="id"),
    "belle_eval": BenchmarkSpec(name="belle_eval", path="belle_zh_eval_set.jsonl", fields=["question"]),
    "cmmlu": BenchmarkSpec(name="cmmlu", path="cmmlu/test/*.csv", fields=["Question"]),
}


def shared_data_dir() -> Path:
    """``$OIDKIT_SHARED_DATA``, else ``../shared/data`` next to the current folder or the project root."""
    if os.environ.get("OIDKIT_SHARED_DATA"):
        return Path(os.environ["OIDKIT_SHARED_DATA"])
    project_root = Path(__file__).resolve().parents[4]
    for candidate in (Path.cwd().parent / "shared" / "data", project_root.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return project_root.parent / "shared" / "data"


class DecontaminateConfig(OpConfig):
    benchmarks: list[str | BenchmarkSpec] = ["gsm8k", "self_instruct_eval", "belle_eval", "cmmlu"]
    """Known names (gsm8k, self_instruct_eval, belle_eval, cmmlu: resolved in $OIDKIT_SHARED_DATA or
    ../shared/data) or {name, path, fields, id_field} for your own JSONL/CSV (fields may be dotted, e.g.
    instances.input)."""
    ngram: int = 13
    """Shared n-gram length in tokens (words; characters for CJK)."""
    roles: list[str] = ["user", "assistant"]
    """Which turns of a training record are searched."""
    required: bool = False
    """A benchmark file that is not found stops the run, instead of the benchmark being skipped with a note
    (in stats.json and the report's curation section)."""


@register
class Decontaminate(Filter):
    """Drop records sharing an n-gram of ``ngram`` tokens with any item of the evaluation sets."""

    name = "decontaminate"
    Config = DecontaminateConfig
    reasons = {"benchmark_overlap": "shares an n-gram with an evaluation item (value: benchmark, item, n-gram)"}

    def __init__(self, config: DecontaminateConfig):
        super().__init__(config)
        self.specs, missing = resolve_benchmarks(config.benchmarks)
        for spec in missing:
            if config.required:
                raise ConfigError(f"benchmark {spec.name}: no file at {spec.path}; set OIDKIT_SHARED_DATA to the "
                                  "folder holding the evaluation sets or give {name, path, fields} for your copy")
            self.notes.append(f"benchmark {spec.name} skipped: no file at {spec.path} (set OIDKIT_SHARED_DATA; "
                              "required: true makes this an error)")

    def setup(self) -> None:
        # n-gram (a tuple of tokens) -> (benchmark, item id). A plain dict of tuples: measured on the real
        # data it beat a numpy rolling-hash index (tuple hashing is C code; the numpy version was 0.75x).
        n = self.config.ngram
        self.index: dict[tuple[str, ...], tuple[str, str]] = {}
        for spec in self.specs:
            for item_id, item_text in benchmark_items(spec):
                item_tokens = tokens(unicodedata.normalize("NFKC", item_text))
                for start in range(len(item_tokens) - n + 1):
                    self.index.setdefault(tuple(item_tokens[start:start + n]), (spec.name, item_id))

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        n, index = self.config.ngram, self.index
        record_tokens = tokens(unicodedata.normalize("NFKC", text(record, self.config.roles)))
        for start in range(len(record_tokens) - n + 1):
            gram = tuple(record_tokens[start:start + n])
            if gram in index:
                benchmark, item_id = index[gram]
                return False, "benchmark_overlap", {"benchmark": benchmark, "item": item_id, "ngram": " ".join(gram)}
        return True, "", None


def resolve_benchmarks(entries: list[str | BenchmarkSpec]) -> tuple[list[BenchmarkSpec], list[BenchmarkSpec]]:
    """``(found, missing)``: known names resolved under the shared data folder; a ConfigError for unknown names."""
    specs, missing = [], []
    for entry in entries:
        if isinstance(entry, str):
            if entry not in KNOWN_BENCHMARKS:
                raise ConfigError(f"unknown benchmark {entry!r}: use one of {', '.join(KNOWN_BENCHMARKS)} or "
                                  "{name: ..., path: file.jsonl, fields: [question]}")
            known = KNOWN_BENCHMARKS[entry]
            entry = known.model_copy(update={"path": str(shared_data_dir() / known.path)})
        (specs if benchmark_files(entry.path) else missing).append(entry)
    return specs, missing


def benchmark_files(pattern: str) -> list[Path]:
    path = Path(pattern)
    return sorted(path.parent.glob(path.name)) if any(c in pattern for c in "*?[") else [path] * path.is_file()


def benchmark_items(spec: BenchmarkSpec):
    """Yield ``(item id, text)``: an item's fields joined, ids from ``id_field`` or file/row position."""
    files = benchmark_files(spec.path)
    for path in files:
        if path.suffix == ".csv":
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = list(read_jsonl(path))
        for i, row in enumerate(rows):
            parts = [value for field in spec.fields for value in _field_values(row, field)]
            prefix = f"{path.stem}/" if len(files) > 1 else ""
            item_id = str(row[spec.id_field]) if spec.id_field else f"{prefix}{i}"
            yield item_id, "\n".join(p for p in parts if isinstance(p, str))


def _field_values(row: Any, dotted: str) -> list[Any]:
    """Values at a dotted path, descending into lists (``instances.input`` -> every instance's input)."""
    values = [row]
    for key in dotted.split("."):
        values = [v.get(key) for value in values
                  for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]
    return [v for v in values if v is not None]
