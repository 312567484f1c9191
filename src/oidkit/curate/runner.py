"""Run a recipe: read, apply each step with full accounting, checkpoint, write kept / rejects / stats.

Every record that enters a step leaves it either kept (possibly modified) or as a reject naming the step,
the reason code and the measured value, so ``input == kept + rejects`` holds for the run and per step.

Resume: each step's output is checkpointed under ``OUT/.steps`` with a fingerprint chaining the input
files (path, size, mtime), the earlier steps and its own config. An interrupted run restarts after the
last finished step; a finished run whose fingerprint matches ``stats.json`` is not run again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from oidkit.curate.base import Decision, Filter, GlobalOp, Mapper, Operator
from oidkit.curate.recipe import Recipe, build_operators, resolved_recipe
from oidkit.curate.text import digest
from oidkit.io import read_jsonl, read_records, write_jsonl, write_records
from oidkit.io.files import expand_paths
from oidkit.records import canonical_json, conversation_problems, make_reject

CHECKPOINTS = ".steps"


@dataclass
class Tally:
    """What one step did: counts in and out, reasons, per-type extras (PII per type, fixes per kind)."""

    seen: int = 0
    kept: int = 0
    modified: int = 0
    reasons: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.seen += other.seen
        self.kept += other.kept
        self.modified += other.modified
        self.reasons.update(other.reasons)
        self.extra.update(other.extra)

    def to_stats(self, name: str, op: str, seconds: float) -> dict:
        return {"name": name, "op": op, "in": self.seen, "out": self.kept, "dropped": self.seen - self.kept,
                "modified": self.modified, "seconds": round(seconds, 3), "reasons": dict(self.reasons),
                "extra": dict(self.extra)}


def reject_of(record: dict, step: str, reason: str, value: Any, detail: str = "",
              duplicate_of: str | None = None) -> dict:
    extra = {"duplicate_of": duplicate_of} if duplicate_of is not None else {}
    return make_reject(record, stage="curate", operator=step, reason=reason, value=value, detail=detail, **extra)


def broken_by_rewrite(before: dict, after: dict) -> tuple[str, str] | None:
    """The first conversation problem ``after`` has that ``before`` did not, or ``None``."""
    known = {code for code, _ in conversation_problems(before["messages"])}
    for code, detail in conversation_problems(after["messages"]):
        if code not in known:
            return code, detail
    return None


def filter_decision(op: Filter, keep: bool, reason: str, value: Any) -> Decision | None:
    """A filter's verdict as a global operator's decision: drop, stamp ``meta[op.stamp]``, or keep as is."""
    if not keep:
        return Decision(reason, value, op.reasons.get(reason, ""))
    return Decision(meta={op.stamp: value}) if op.stamp and value is not None else None


def run_batch(op: Operator, step: str, batch: list[dict]) -> tuple[list[dict], list[dict], Tally]:
    """Apply a filter or mapper to one batch: (kept records, rejects, tally). Used by every engine."""
    if isinstance(op, Filter):
        return apply_decisions(step, batch, [filter_decision(op, *verdict) for verdict in op.keep_batch(batch)])
    if not isinstance(op, Mapper):
        raise TypeError(f"{type(op).__name__} is neither a Filter nor a Mapper")
    tally = Tally(seen=len(batch))
    kept, rejects = [], []
    for record in batch:
        new, counts = op.map(record)
        tally.extra.update(counts)
        if new is not record:
            # A rewrite must not break the conversation (e.g. HTML stripping emptying an answer):
            # such a record leaves as a reject, in its original form, instead of passing on broken.
            introduced = broken_by_rewrite(record, new)
            if introduced:
                code, detail = introduced
                rejects.append(reject_of(record, step, code, detail, f"{op.name} would leave: {detail}"))
                tally.reasons[code] += 1
                continue
            tally.modified += 1
        kept.append(new)
    tally.kept = len(kept)
    return kept, rejects, tally


def apply_decisions(step: str, batch: list[dict], decisions: list[Decision | None]) -> tuple[list, list, Tally]:
    """Apply decisions (aligned with ``batch``) of a global operator or a filter: drop, annotate ``meta`` or keep."""
    tally = Tally(seen=len(batch))
    kept, rejects = [], []
    for record, decision in zip(batch, decisions, strict=True):
        if decision is None:
            kept.append(record)
        elif decision.reason is not None:
            rejects.append(reject_of(record, step, decision.reason, decision.value, decision.detail,
                                     decision.duplicate_of))
            tally.reasons[decision.reason] += 1
        else:
            kept.append({**record, "meta": {**record.get("meta", {}), **decision.meta}})
            tally.modified += 1
    tally.kept = len(kept)
    return kept, rejects, tally


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


ProgressFn = Callable[[str, int, int | None], None]  # (label, advance, total) -> None


class LocalEngine:
    """One process, batch by batch, records in a list. Never imports ray."""

    name = "local"

    def __init__(self, batch_size: int, progress: ProgressFn):
        self.records: list[dict] = []
        self.batch_size, self.progress = batch_size, progress

    def start(self, records: list[dict]) -> None:
        self.records = records

    def run_step(self, op: Operator, step: str) -> tuple[list[dict], Tally]:
        """Apply one operator to the current records; return its rejects and tally."""
        op.setup()
        records = self.records
        if isinstance(op, GlobalOp):
            keys: list[Any] = []
            for batch in batches(records, self.batch_size):
                keys.extend(op.keys(batch))
                self.progress(f"{step}: keys", len(batch), len(records))
            decided = op.resolve(keys, [r["id"] for r in records])
            self.records, rejects, tally = apply_decisions(step, records, [decided.get(i) for i in range(len(records))])
            return rejects, tally
        kept, rejects, tally = [], [], Tally()
        for batch in batches(records, self.batch_size):
            batch_kept, batch_rejects, batch_tally = run_batch(op, step, batch)
            kept.extend(batch_kept)
            rejects.extend(batch_rejects)
            tally.add(batch_tally)
            self.progress(step, len(batch), len(records))
        self.records = kept
        return rejects, tally

    def save(self, folder: Path) -> None:
        write_jsonl(folder / "records.jsonl.tmp", self.records)
        os.replace(folder / "records.jsonl.tmp", folder / "records.jsonl")

    @staticmethod
    def saved(folder: Path) -> bool:
        return (folder / "records.jsonl").exists()

    def load(self, folder: Path) -> None:
        self.records = list(read_jsonl(folder / "records.jsonl"))

    def iter_records(self) -> Iterable[dict]:
        return iter(self.records)


def input_fingerprint(paths: list[str]) -> list:
    """Path, size and modification time of every input file (folders and globs expanded): cheap, and
    any rewrite of an input changes it."""
    return [[str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns] for file in expand_paths(paths)]


def read_input(recipe: Recipe, out: Path, progress: ProgressFn) -> list[dict]:
    """All input records; rows the reader rejects (with salvage) go to ``OUT/ingest_rejects.jsonl``."""
    ingest_rejects: list[dict] = []
    total_bytes = sum(size or 0 for _, size, _ in input_fingerprint(recipe.input.paths))
    done = [0]

    def advance(bytes_read: int) -> None:
        progress("read (bytes)", bytes_read - done[0], total_bytes)
        done[0] = bytes_read

    spec = recipe.input
    records = list(read_records(spec.paths, format=spec.format, salvage=spec.salvage, columns=spec.columns,
                                field=spec.field, python_literals=spec.python_literals,
                                on_reject=ingest_rejects.append, on_progress=advance))
    if ingest_rejects:
        write_jsonl(out / "ingest_rejects.jsonl", ingest_rejects)
    return records


class Bars:
    """Rich progress bars on stderr, one per label, created on first use (a no-op when disabled)."""

    def __init__(self, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), disable=not enabled)
        self.tasks: dict[str, Any] = {}

    def __call__(self, label: str, advance: int, total: int | None) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], advance=advance)

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def run_recipe(recipe: Recipe, *, force: bool = False, show_progress: bool = False) -> dict:
    """Run ``recipe`` and return its stats (also written to ``OUT/stats.json``).

    ``stats["up_to_date"]`` is True when an identical finished run was found and nothing was done.
    """
    with Bars(show_progress) as progress:
        return _run(recipe, force, progress)


def _run(recipe: Recipe, force: bool, progress: ProgressFn) -> dict:
    out = Path(recipe.output.path)
    operators = build_operators(recipe)
    resolved = resolved_recipe(recipe)
    fingerprint = digest(canonical_json([input_fingerprint(recipe.input.paths),
                                         {k: v for k, v in resolved.items() if k not in ("engine", "batch_size")}]
                                        ).decode())
    stats_path = out / "stats.json"
    if not force and stats_path.exists():
        previous = orjson.loads(stats_path.read_bytes())
        if previous.get("fingerprint") == fingerprint and Path(previous["output"]["paths"][0]).exists():
            return {**previous, "up_to_date": True}

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / CHECKPOINTS
    if force and checkpoints.exists():
        shutil.rmtree(checkpoints)
    step_fingerprints = []
    chain = digest(canonical_json([input_fingerprint(recipe.input.paths), resolved["input"]]).decode())
    for step in resolved["steps"]:
        chain = digest(chain + canonical_json(step).decode())
        step_fingerprints.append(chain)
    engine = make_engine(recipe, progress)
    resume_at = find_checkpoint(checkpoints, operators, step_fingerprints, engine)
    input_count = None
    if resume_at == 0:
        records = read_input(recipe, out, progress)
        input_count = len(records)
        engine.start(records)
    for index, (name, op) in enumerate(operators):
        if index < resume_at:
            continue
        step_started = time.perf_counter()
        rejects, tally = engine.run_step(op, name)
        step_stats = tally.to_stats(name, op.name, time.perf_counter() - step_started)
        if op.notes:
            step_stats["notes"] = op.notes
        save_checkpoint(checkpoints, index, name, step_fingerprints[index], step_stats, engine, rejects,
                        input_count if index == 0 else None)
    return finish(recipe, resolved, operators, engine, out, fingerprint, time.perf_counter() - started)


def make_engine(recipe: Recipe, progress: ProgressFn):
    """The engine the recipe names; ray is imported only here, only when asked for."""
    if recipe.engine == "ray":
        from oidkit.curate.ray_engine import RayEngine

        return RayEngine(recipe.batch_size, progress)
    return LocalEngine(recipe.batch_size, progress)


def step_dir(checkpoints: Path, index: int, name: str) -> Path:
    return checkpoints / f"{index:02d}-{name}"


def save_checkpoint(checkpoints: Path, index: int, name: str, fingerprint: str, stats: dict, engine,
                    rejects: list[dict], input_count: int | None) -> None:
    """Write a finished step: its rejects, stats and kept records (the previous step's records go)."""
    folder = step_dir(checkpoints, index, name)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_jsonl(folder / "rejects.jsonl", rejects)
    engine.save(folder)
    state = {"fingerprint": fingerprint, "stats": stats}
    if input_count is not None:
        state["input_records"] = input_count
    (folder / "done.json").write_bytes(orjson.dumps(state))
    for older in checkpoints.iterdir():
        if older != folder:
            for saved in older.glob("records*"):
                shutil.rmtree(saved) if saved.is_dir() else saved.unlink()


def find_checkpoint(checkpoints: Path, operators: list, fingerprints: list[str], engine) -> int:
    """The first step to run: after the last finished step whose records are saved (loaded into ``engine``)."""
    last = -1
    for index, (name, _) in enumerate(operators):
        done = step_dir(checkpoints, index, name) / "done.json"
        if not done.exists() or orjson.loads(done.read_bytes())["fingerprint"] != fingerprints[index]:
            break
        last = index
    while last >= 0 and not engine.saved(step_dir(checkpoints, last, operators[last][0])):
        last -= 1  # only the newest step keeps its records; older finished steps cannot be resumed from
    if last >= 0:
        engine.load(step_dir(checkpoints, last, operators[last][0]))
    return last + 1


def finish(recipe: Recipe, resolved: dict, operators: list, engine, out: Path, fingerprint: str,
           seconds: float) -> dict:
    """Write kept records, all rejects, split files, the resolved recipe and stats; drop the checkpoints."""
    checkpoints = out / CHECKPOINTS
    kept_count = 0

    def counted(records: Iterable[dict]) -> Iterable[dict]:
        nonlocal kept_count
        for record in records:
            kept_count += 1
            yield record

    name = "kept.parquet" if recipe.output.format == "parquet" else "kept.jsonl"
    paths = write_records(counted(engine.iter_records()), out / name, format=recipe.output.format,
                          shard_size=recipe.output.shard_size)
    step_states = [orjson.loads((step_dir(checkpoints, i, name) / "done.json").read_bytes())
                   for i, (name, _) in enumerate(operators)]
    with open(out / "rejects.jsonl", "wb") as target:
        for i, (name, _) in enumerate(operators):
            with open(step_dir(checkpoints, i, name) / "rejects.jsonl", "rb") as source:
                shutil.copyfileobj(source, target)
    splits = write_splits(engine.iter_records(), out / "splits") if "split" in [s["op"] for s in resolved["steps"]] \
        else {}
    (out / "recipe.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), encoding="utf-8")
    operator_stats = [state["stats"] for state in step_states]
    input_records = step_states[0].get("input_records") if step_states else kept_count
    stats = {
        "input": {"paths": recipe.input.paths, "records": input_records},
        "output": {"records": kept_count, "path": str(paths[0]), "paths": [str(p) for p in paths],
                   "rejects": str(out / "rejects.jsonl"),
                   "splits": splits},
        "engine": recipe.engine,
        "seconds": round(seconds, 3),
        "operators": operator_stats,
        "fingerprint": fingerprint,
    }
    (out / "stats.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2))
    shutil.rmtree(checkpoints)
    return stats


def write_splits(records: Iterable[dict], folder: Path) -> dict[str, int]:
    """One JSONL file per ``meta.split`` value (set by the split operator); returns the counts."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files: dict[str, Any] = {}
    counts: Counter = Counter()
    try:
        for record in records:
            split = record.get("meta", {}).get("split")
            if split is None:
                continue
            if split not in files:
                files[split] = open(folder / f"{split}.jsonl", "wb")  # noqa: SIM115  (closed below)
            files[split].write(orjson.dumps(record) + b"\n")
            counts[split] += 1
    finally:
        for f in files.values():
            f.close()
    return dict(counts)
