"""Applications end to end: a real public dataset -> task conversations -> curated -> LoRA-tuned -> measured.

One module per application builds its conversations from the source files (``build``) with the task's
system prompt; ``pipeline.run_app`` (the one module that calls several stages) curates, trains, evaluates
base / few-shot base / tuned with paired bootstrap intervals and writes the report. Each application's
settings (sources, sizes, curation steps, training) are the packaged recipe ``recipes/apps/<name>.yaml``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oidkit.io.files import archive_members, expand_paths, iter_rows, sniff_container
from oidkit.io.jsonstream import Unreadable
from oidkit.records import make_reject

APPS = ("service", "summarise", "translate")


@dataclass
class Source:
    """What was read from one source file set: rows, records made, rejects by reason."""

    name: str
    rows: int = 0
    records: int = 0
    rejected: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"source": self.name, "rows": self.rows, "records": self.records, "rejected": dict(self.rejected)}


@dataclass
class Built:
    """An application's data: training conversations, test records (last turn = reference), accounting."""

    train: list[dict]
    test: list[dict]
    sources: list[Source]
    rejects: list[dict]
    system_prompt: str  # what `oid serve` answers with by default for the tuned model


def source_rows(paths: str | Path | list, source: Source, rejects: list[dict], *,
                python_literals: bool = False) -> Iterator[tuple[Any, dict]]:
    """``(row, position)`` of every readable row of ``paths`` through oidkit's readers (gzip, zstd, zip, JSON,
    JSONL; ``python_literals`` for JSONL lines written as Python dicts); unreadable rows are counted and kept
    as ingest rejects."""
    for path in (member for given in expand_paths(paths) for member in archive_members(given)):
        for row, position in iter_rows(path, sniff_container(path), python_literals=python_literals):
            source.rows += 1
            where = {"file": str(path), **position}
            if isinstance(row, Unreadable):
                reject(source, rejects, row.reason, row.detail, row.raw, where)
                continue
            yield row, where


def reject(source: Source, rejects: list[dict], reason: str, detail: str, row: Any, where: dict) -> None:
    """Count and keep one dropped row in the shape every stage uses."""
    source.rejected[reason] += 1
    rejects.append(make_reject(row, stage="ingest", operator=f"app:{source.name}", reason=reason, detail=detail,
                               source=where))


def record(record_id: str, messages: list[dict], source: dict, **meta: Any) -> dict:
    """A canonical record (``records.py``) from plain role/content turns."""
    return {"id": record_id, "messages": messages, "source": source, "meta": meta}
