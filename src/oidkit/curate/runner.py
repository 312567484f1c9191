"""Run a recipe: read, apply each step with full accounting, checkpoint, write kept / rejects / stats.

Every record that enters a step leaves it either kept (possibly modified) or as a reject naming the step,
the reason code and the measured value, so ``input == kept + rejects`` holds for the run and per step.

Resume: each step's output is checkpointed under ``OUT/.steps`` with a fingerprint chaining the input
files (path, size, mtime), the earlier steps and its own config. An interrupted run restarts after the
last finished step; a finished run whose fingerprint matches ``stats.json`` is not run again.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from oidkit.atomic import atomic_folder, atomic_path, write_atomic
from oidkit.curate.base import GlobalOp, Operator
from oidkit.curate.batch import Tally, apply_decisions, batches, read_accounting, run_batch
from oidkit.curate.recipe import Recipe, build_operators, resolved_recipe
from oidkit.curate.text import digest
from oidkit.io import ReadStats, read_jsonl, read_records, write_jsonl, write_records
from oidkit.io.files import expand_paths
from oidkit.io.outputs import refuse_overwriting_inputs
from oidkit.io.writers import other_layout, stale_shards
from oidkit.records import canonical_json

if TYPE_CHECKING:  # rich loads only when bars are shown
    from oidkit.core.progress import ProgressFn

CHECKPOINTS = ".steps"


class LocalEngine:
    """One process, batch by batch, records in a list. Never imports ray."""

    name = "local"

    def __init__(self, batch_size: int, progress: ProgressFn):
        self.records: list[dict] = []
        self.rejects: list[dict] = []  # the last step's
        self.batch_size, self.progress = batch_size, progress

    def read(self, recipe: Recipe, out: Path, progress: ProgressFn) -> dict:
        """Read the input into memory; returns the read's accounting (see :func:`read_input`)."""
        self.records, read = read_input(recipe, out, progress)
        return read

    def run_step(self, op: Operator, step: str) -> Tally:
        """Apply one operator to the current records (its rejects kept for ``save``); return its tally."""
        op.setup()
        records = self.records
        if isinstance(op, GlobalOp):
            keys: list[Any] = []
            for batch in batches(records, self.batch_size):
                keys.extend(op.keys(batch))
                self.progress(f"{step}: keys", len(batch), len(records))
            decided = op.resolve(keys, [r["id"] for r in records])
            self.records, self.rejects, tally = apply_decisions(step, records,
                                                                [decided.get(i) for i in range(len(records))])
            return tally
        kept, rejects, tally = [], [], Tally()
        for batch in batches(records, self.batch_size):
            batch_kept, batch_rejects, batch_tally = run_batch(op, step, batch)
            kept.extend(batch_kept)
            rejects.extend(batch_rejects)
            tally.add(batch_tally)
            self.progress(step, len(batch), len(records))
        self.records, self.rejects = kept, rejects
        return tally

    def save(self, folder: Path) -> None:
        write_jsonl(folder / "rejects.jsonl", self.rejects)
        write_jsonl(folder / "records.jsonl", self.records)

    @staticmethod
    def saved(folder: Path) -> bool:
        return (folder / "records.jsonl").exists()

    def load(self, folder: Path) -> None:
        self.records = list(read_jsonl(folder / "records.jsonl"))

    def iter_records(self) -> Iterable[dict]:
        return iter(self.records)

    def write_kept(self, path: Path, format: str, shard_size: int | None) -> tuple[list[Path], int]:
        """The kept records as ``path`` (or shards of ``shard_size``); returns the files and the record count."""
        return write_records(self.records, path, format=format, shard_size=shard_size), len(self.records)

    @staticmethod
    def write_rejects(path: Path, step_folders: list[Path]) -> list[Path]:
        """Every step's rejects, in step order, as the one file ``path``."""
        with atomic_path(path) as temp, open(temp, "wb") as target:
            for folder in step_folders:
                with open(folder / "rejects.jsonl", "rb") as source:
                    shutil.copyfileobj(source, target)
        return [path]


def input_fingerprint(paths: list[str]) -> list:
    """Path, size and modification time of every input file (folders and globs expanded): cheap, and
    any rewrite of an input changes it."""
    return [[str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns] for file in expand_paths(paths)]


def read_input(recipe: Recipe, out: Path, progress: ProgressFn) -> tuple[list[dict], dict]:
    """All input records and the read's accounting (rows read, rejected on read, records).

    Rows the reader rejects (bad rows; a truncated tail with salvage) go to ``OUT/ingest_rejects.jsonl``.
    """
    ingest_rejects: list[dict] = []
    stats = ReadStats()
    total_bytes = sum(size or 0 for _, size, _ in input_fingerprint(recipe.input.paths))
    done = [0]

    def advance(bytes_read: int) -> None:
        progress("read (bytes)", bytes_read - done[0], total_bytes)
        done[0] = bytes_read

    spec = recipe.input
    records = list(read_records(spec.paths, format=spec.format, salvage=spec.salvage, columns=spec.columns,
                                field=spec.field, python_literals=spec.python_literals,
                                on_reject=ingest_rejects.append, on_progress=advance, stats=stats))
    return records, read_accounting(out, ingest_rejects, stats.rows, sum(stats.rejected.values()), len(records))


def run_recipe(recipe: Recipe, *, force: bool = False, show_progress: bool = False) -> dict:
    """Run ``recipe`` and return its stats (also written to ``OUT/stats.json``).

    ``stats["up_to_date"]`` is True when an identical finished run was found and nothing was done.
    """
    from rich.console import Console

    from oidkit.core.progress import LabelBars

    with LabelBars(Console(stderr=True), enabled=show_progress) as progress:
        return _run(recipe, force, progress)


def _run(recipe: Recipe, force: bool, progress: ProgressFn) -> dict:
    out = Path(recipe.output.path)
    operators = build_operators(recipe)
    resolved = resolved_recipe(recipe)
    fingerprint = digest(canonical_json([input_fingerprint(recipe.input.paths),
                                         {k: v for k, v in resolved.items() if k not in ("engine", "batch_size")}]
                                        ).decode())
    refuse_overwriting_inputs([], recipe.input.paths, folders=[out])
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
    read = None
    if resume_at == 0:
        read = engine.read(recipe, out, progress)
    for index, (name, op) in enumerate(operators):
        if index < resume_at:
            continue
        step_started = time.perf_counter()
        tally = engine.run_step(op, name)
        step_stats = tally.to_stats(name, op.name, time.perf_counter() - step_started)
        if op.notes:
            step_stats["notes"] = op.notes
        save_checkpoint(checkpoints, index, name, step_fingerprints[index], step_stats, engine,
                        read if index == 0 else None)
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
                    read: dict | None) -> None:
    """Write a finished step: its rejects, stats and kept records (the previous step's records go)."""
    folder = step_dir(checkpoints, index, name)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    engine.save(folder)
    state = {"fingerprint": fingerprint, "stats": stats}
    if read is not None:
        state["read"] = read
    write_atomic(folder / "done.json", orjson.dumps(state))  # last: marks the step finished
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
    """Write kept records, all rejects, split files, the resolved recipe and stats; drop the checkpoints.

    The engine writes the kept records and rejects (the Ray engine in its workers, as shard sets)."""
    checkpoints = out / CHECKPOINTS
    kept_name = "kept.parquet" if recipe.output.format == "parquet" else "kept.jsonl"
    paths, kept_count = engine.write_kept(out / kept_name, recipe.output.format, recipe.output.shard_size)
    step_folders = [step_dir(checkpoints, i, name) for i, (name, _) in enumerate(operators)]
    step_states = [orjson.loads((folder / "done.json").read_bytes()) for folder in step_folders]
    rejects = engine.write_rejects(out / "rejects.jsonl", step_folders)
    has_split = "split" in [s["op"] for s in resolved["steps"]]
    splits = write_splits(engine.iter_records(), out / "splits") if has_split else {}
    write_atomic(out / "recipe.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    operator_stats = [state["stats"] for state in step_states]
    read = step_states[0]["read"] if step_states else {"rows": kept_count, "rejected_on_read": 0,
                                                       "records": kept_count, "ingest_rejects": None}
    stats = {
        "input": {"paths": recipe.input.paths, **read},  # rows read = rejected on read + records
        "output": {"records": kept_count, "path": str(paths[0]), "paths": [str(p) for p in paths],
                   "rejects": str(rejects[0]), "rejects_paths": [str(p) for p in rejects],
                   "splits": splits},
        "engine": recipe.engine,
        "seconds": round(seconds, 3),
        "operators": operator_stats,
        "fingerprint": fingerprint,
    }
    # only now that the new outputs are published, and before stats.json marks the run done (a kill in between
    # leaves a run that is redone, not a done run beside stale files): an earlier run's kept / rejects in the
    # other layout (a Ray run's shard sets before a local run's single files, or the reverse), its kept records
    # in the other format (one file or shards; both formats' sets share one manifest name, which other_layout
    # handles), and its splits when this recipe has no split step. The folder holds no input (refused at the
    # start), so these are all this command's own earlier outputs.
    other_format = out / ("kept.jsonl" if kept_name == "kept.parquet" else "kept.parquet")
    for old in [*other_layout(out / kept_name, paths), *other_layout(out / "rejects.jsonl", rejects),
                other_format, *stale_shards(other_format, 0)]:
        old.unlink(missing_ok=True)
    if not has_split and (out / "splits").is_dir():
        shutil.rmtree(out / "splits")
    write_atomic(out / "stats.json", orjson.dumps(stats, option=orjson.OPT_INDENT_2))  # last: marks the run done
    shutil.rmtree(checkpoints)
    return stats


def write_splits(records: Iterable[dict], folder: Path) -> dict[str, int]:
    """One JSONL file per ``meta.split`` value (set by the split operator); returns the counts. The folder
    is filled under a temporary name and replaces the old one when complete."""
    with atomic_folder(folder, owned=True) as temp:
        return _write_split_files(records, temp)


def _write_split_files(records: Iterable[dict], folder: Path) -> dict[str, int]:
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
