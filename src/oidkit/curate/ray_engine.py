"""The Ray Data engine: the same operators, spread over a Ray cluster.

- Records travel as one JSON string column (``record``), so nested ``meta`` of any shape survives.
- Filters and mappers run as ``map_batches`` tasks; ``setup()`` runs once per worker process (a cache by
  operator type and config), so models and benchmark indexes are built once per worker, not per batch.
- Workers read the input, one task per input file (shard): rows rejected on read and each file's counts
  go to the driver, which writes ``ingest_rejects.jsonl`` as the local engine does.
- Every row carries ``uid``, its position in the input (file number, then position in the file). Global
  operators (dedup, mix, split) compute their small keys in ``map_batches``; the driver sorts them by
  ``uid`` (so "first" means first in the input, as in the local engine), resolves them and broadcasts the
  decisions by ``uid`` (``ray.put``).
- Workers write: a step's checkpoint (Parquet, by Ray) and its rejects (JSONL, a part per worker CPU), and at
  the end the kept records, a part per block (``repartition``: a block per worker CPU, or blocks of at most
  ``output.shard_size`` records). Parts go under a hidden staging folder; the driver only renames them,
  in ``uid`` order, onto ``kept-00000.jsonl`` ... / ``rejects-00000.jsonl`` ... and writes each set's
  ``BASE.shards.json`` last (``io.outputs.publish_shards``), so a killed run never leaves a set that looks
  complete. Only the per-batch tallies (and the parts' names and counts) reach the driver, for ``stats.json``.

``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` (e.g. ``ray://head:10001`` or ``auto``), else
starts a local instance.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import ray

from oidkit.atomic import atomic_folder, link_or_copy, temp_folder, write_atomic
from oidkit.curate.base import GlobalOp, Operator
from oidkit.curate.batch import Tally, apply_decisions, read_accounting, run_batch
from oidkit.errors import OidError
from oidkit.io import ReadStats, read_records, write_records
from oidkit.io.files import expand_paths
from oidkit.io.outputs import publish_shards
from oidkit.io.writers import shard_path, stale_shards

if TYPE_CHECKING:  # rich loads only when bars are shown
    from oidkit.core.progress import ProgressFn
    from oidkit.curate.recipe import Recipe

FILE_UIDS = 1 << 40  # uid = file number * FILE_UIDS + position in the file
PARTS = "parts.json"  # a step's reject parts in input order, with their record counts


def _records(column: Any) -> list[dict]:
    return [orjson.loads(value) for value in column]


def _dump(rows: list[dict]) -> np.ndarray:
    return np.array([orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY).decode() for row in rows], dtype=object)


def _tagged(uids: np.ndarray, records: list[dict], outcome: tuple[list[dict], list[dict], Tally]) -> dict:
    """One output row per input row, a kept record or a reject, with its uid; the tally rides on row 0.

    Operators keep input order and a reject wraps the very input record, so walking the inputs pairs each
    one with its outcome: rejected if a reject holds it, else the next kept record.
    """
    kept, rejects, tally = outcome
    rejected = {id(reject["record"]): reject for reject in rejects}
    kept_rows = iter(kept)
    record_cells, reject_cells = [], []
    for record in records:
        reject = rejected.get(id(record))
        record_cells.append("" if reject else _dump([next(kept_rows)])[0])
        reject_cells.append(_dump([reject])[0] if reject else "")
    tallies = np.full(len(records), "", dtype=object)
    if records:
        tallies[0] = pickle.dumps(tally).hex()
    return {"uid": uids, "record": np.array(record_cells, dtype=object),
            "reject": np.array(reject_cells, dtype=object), "tally": tallies}


def _read_file(task: dict, options: dict) -> list[dict]:
    """One input file read in a worker: a row per record and per row rejected on read, in file order, and
    one row with the file's ``[rows read, rows rejected]``; or one row with the reader's error."""
    rejects: list[dict] = []
    stats = ReadStats()
    base = task["number"] * FILE_UIDS
    empty = {"uid": base, "record": "", "reject": "", "counts": "", "error": ""}
    try:
        records = list(read_records(task["path"], on_reject=rejects.append, stats=stats, **options))
    except OidError as error:  # raised again on the driver as it is (Ray would wrap it and add to its message)
        return [{**empty, "error": pickle.dumps(error).hex()}]
    counts = orjson.dumps([stats.rows, sum(stats.rejected.values())]).decode()
    return [{**empty, "counts": counts}, *({**empty, "uid": base + i, "record": orjson.dumps(r).decode()}
                                           for i, r in enumerate(records)),
            *({**empty, "uid": base + i, "reject": orjson.dumps(r).decode()} for i, r in enumerate(rejects))]


# Operators set up in this worker process, by type and config: Ray reuses worker processes across tasks,
# so a model or benchmark index is built once per worker, and tasks avoid an actor pool's start-up per step.
_READY: dict[tuple[str, str], Operator] = {}


def _ready(op: Operator) -> Operator:
    key = (type(op).__name__, op.config.model_dump_json())
    if key not in _READY:
        op.setup()
        _READY[key] = op
    return _READY[key]


def _apply_operator(batch: dict[str, np.ndarray], op: Operator, step: str) -> dict[str, np.ndarray]:
    records = _records(batch["record"])
    return _tagged(batch["uid"], records, run_batch(_ready(op), step, records))


def _keys(batch: dict[str, np.ndarray], op: GlobalOp) -> dict[str, np.ndarray]:
    """A global operator's per-record keys, pickled (they may be numpy signatures)."""
    records = _records(batch["record"])
    keys = _ready(op).keys(records)
    return {"uid": batch["uid"], "id": np.array([r["id"] for r in records], dtype=object),
            "key": np.array([pickle.dumps(k) for k in keys], dtype=object)}


def _apply_decisions(batch: dict[str, np.ndarray], decisions_ref: Any, step: str) -> dict[str, np.ndarray]:
    decisions = ray.get(decisions_ref)
    records = _records(batch["record"])
    return _tagged(batch["uid"], records, apply_decisions(step, records, [decisions.get(u) for u in batch["uid"]]))


def _write_part(batch: dict[str, np.ndarray], column: str, folder: str, suffix: str, format: str) -> dict:
    """One block written by the worker that holds it: ``FOLDER/part-FIRSTUID.SUFFIX``; returns its name and count.

    A part is named by its first ``uid``, so the driver puts the parts in input order by sorting the names."""
    if not len(batch["uid"]):
        return {"name": np.array([], dtype=object), "records": np.array([], dtype=np.int64)}
    path = Path(folder) / f"part-{int(batch['uid'][0]):020d}{suffix}"
    write_records(_records(batch[column]), path, format=format)
    return {"name": np.array([path.name], dtype=object), "records": np.array([len(batch["uid"])])}


def _write_parts(dataset: Any, column: str, folder: Path, suffix: str, format: str) -> list[tuple[str, int]]:
    """Every block of ``dataset[column]`` written as a part file in ``folder`` by the workers; ``(name, count)``
    in input order."""
    folder.mkdir(parents=True, exist_ok=True)
    written = dataset.map_batches(_write_part, fn_kwargs={"column": column, "folder": str(folder.resolve()),
                                                          "suffix": suffix, "format": format},
                                  batch_size=None, batch_format="numpy")
    parts = [(name, int(count)) for batch in written.iter_batches(batch_format="numpy")
             for name, count in zip(batch["name"], batch["records"], strict=True)]
    return sorted(parts)


def _publish_parts(base: Path, staging: Path, parts: list[tuple[Path, int]], format: str) -> list[Path]:
    """Part files renamed onto ``BASE-00000.ext`` ... with ``BASE.shards.json`` last (a single ``BASE`` of an
    earlier run and shards of a larger set go first); no parts is one empty shard, as the local writer leaves."""
    if not parts:
        parts = [(staging / f"empty{''.join(base.suffixes)}", 0)]
        write_records([], parts[0][0], format=format)
    shards = [(part, shard_path(base, number), count) for number, (part, count) in enumerate(parts)]
    publish_shards(base, shards, [base, *stale_shards(base, len(shards))])
    return [final for _, final, _ in shards]


def _worker_cpus() -> int:
    """CPUs of the cluster: how many parts a shard set without ``shard_size`` is written as, one per worker."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class RayEngine:
    """Same interface as ``LocalEngine``: start / run_step / save / load / iter_records."""

    name = "ray"

    def __init__(self, batch_size: int, progress: ProgressFn):
        # Ray's own INFO lines (one per executed dataset) would bury our progress and messages: warnings only.
        # Ray Data reads RAY_DATA_LOG_LEVEL whenever it configures its logger (again per dataset, in the workers
        # too); a level the user set wins.
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
        # configured at import already; a level name Python does not know (e.g. "debug") is left to Ray
        level = logging.getLevelName(os.environ["RAY_DATA_LOG_LEVEL"].upper())
        if isinstance(level, int):
            logging.getLogger("ray.data").setLevel(level)
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except Exception as error:  # Ray raises plain Exceptions (e.g. its node timing out on a busy machine)
                where = f"reach the cluster at RAY_ADDRESS={address}" if address else "start its local node"
                raise OidError(f"Ray could not {where}: {error}\nhint: run with engine=local (same results), or "
                               "retry when the machine is less busy / the cluster is up") from error
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # positions must match the keys the driver resolves
        context.enable_progress_bars = False
        self.batch_size, self.progress = batch_size, progress
        self.dataset = self.step_rejects = None

    def read(self, recipe: Recipe, out: Path, progress: ProgressFn) -> dict:
        """Read the input in the workers, a task per file; returns the read's accounting as the local engine."""
        spec = recipe.input
        options = {"format": spec.format, "salvage": spec.salvage, "columns": spec.columns, "field": spec.field,
                   "python_literals": spec.python_literals}
        files = [{"number": n, "path": str(path)} for n, path in enumerate(expand_paths(spec.paths))]
        rows = ray.data.from_items(files, override_num_blocks=len(files)).flat_map(
            _read_file, fn_kwargs={"options": options}).materialize()
        for batch in rows.filter(expr="error != ''").iter_batches(batch_format="numpy"):
            raise pickle.loads(bytes.fromhex(batch["error"][0]))
        rejects, read_rows, rejected = [], 0, 0
        for batch in rows.select_columns(["uid", "reject", "counts"]).iter_batches(batch_format="numpy"):
            for uid, reject, counts in zip(batch["uid"].tolist(), batch["reject"], batch["counts"], strict=True):
                if reject:
                    rejects.append((uid, orjson.loads(reject)))
                elif counts:
                    file_rows, file_rejected = orjson.loads(counts)
                    read_rows, rejected = read_rows + file_rows, rejected + file_rejected
        progress("read (files)", len(files), len(files))
        self.dataset = rows.filter(expr="record != ''").select_columns(["uid", "record"]).materialize()
        return read_accounting(out, [reject for _, reject in sorted(rejects, key=lambda pair: pair[0])],
                               read_rows, rejected, self.dataset.count())

    def run_step(self, op: Operator, step: str) -> Tally:
        if isinstance(op, GlobalOp):
            keyed = self.dataset.map_batches(_keys, fn_kwargs={"op": op}, batch_size=self.batch_size,
                                             batch_format="numpy")
            uids, ids, keys = [], [], []
            for batch in keyed.iter_batches(batch_format="numpy", batch_size=self.batch_size):
                uids.extend(batch["uid"].tolist())
                ids.extend(batch["id"].tolist())
                keys.extend(pickle.loads(k) for k in batch["key"])
                self.progress(f"{step}: keys", len(batch["id"]), None)
            order = sorted(range(len(uids)), key=uids.__getitem__)  # input order, whatever the execution order
            decided = op.resolve([keys[i] for i in order], [ids[i] for i in order])
            decisions_ref = ray.put({uids[order[position]]: d for position, d in decided.items()})
            tagged = self.dataset.map_batches(_apply_decisions,
                                              fn_kwargs={"decisions_ref": decisions_ref, "step": step},
                                              batch_size=self.batch_size, batch_format="numpy")
        else:
            tagged = self.dataset.map_batches(_apply_operator, fn_kwargs={"op": op, "step": step},
                                              batch_size=self.batch_size, batch_format="numpy")
        tagged = tagged.materialize()
        tally = Tally()
        for batch in tagged.select_columns(["tally"]).iter_batches(batch_format="numpy"):
            for packed in batch["tally"]:
                if packed:
                    tally.add(pickle.loads(bytes.fromhex(packed)))
            self.progress(step, len(batch["tally"]), None)
        self.step_rejects = tagged.filter(expr="reject != ''").select_columns(["uid", "reject"])
        self.dataset = tagged.filter(expr="record != ''").select_columns(["uid", "record"]).materialize()
        return tally

    def save(self, folder: Path) -> None:
        """The step's kept records (Parquet) and its rejects (a JSONL part per worker CPU, listed in
        ``parts.json``), both written by the workers."""
        parts = _write_parts(self.step_rejects.repartition(_worker_cpus()), "reject", folder / "rejects", ".jsonl",
                             "jsonl")
        write_atomic(folder / "rejects" / PARTS, orjson.dumps(parts))
        with atomic_folder(folder / "records", owned=True) as temp:
            self.dataset.write_parquet(str(temp.resolve()))

    @staticmethod
    def saved(folder: Path) -> bool:
        return (folder / "records").is_dir()

    def load(self, folder: Path) -> None:
        self.dataset = ray.data.read_parquet(str((folder / "records").resolve())).materialize()

    def write_kept(self, path: Path, format: str, shard_size: int | None) -> tuple[list[Path], int]:
        """The kept records written by the workers as a shard set: one shard per worker CPU, or shards of at
        most ``shard_size`` records; returns the shards and the number of records."""
        if shard_size:
            blocks = self.dataset.repartition(target_num_rows_per_block=shard_size)
        else:
            blocks = self.dataset.repartition(_worker_cpus())
        with temp_folder(path) as staging:
            parts = _write_parts(blocks, "record", staging, "".join(path.suffixes), format)
            shards = _publish_parts(path, staging, [(staging / name, count) for name, count in parts], format)
        return shards, sum(count for _, count in parts)

    def write_rejects(self, path: Path, step_folders: list[Path]) -> list[Path]:
        """Every step's reject parts, in step order, as one shard set: the parts the workers wrote into the
        checkpoints are linked (copied across file systems) into the staging folder and published."""
        with temp_folder(path) as staging:
            parts = []
            for folder in step_folders:
                for name, count in orjson.loads((folder / "rejects" / PARTS).read_bytes()):
                    staged = staging / f"{len(parts):05d}-{name}"
                    link_or_copy(folder / "rejects" / name, staged)
                    parts.append((staged, count))
            return _publish_parts(path, staging, parts, "jsonl")

    def iter_records(self) -> Iterable[dict]:
        for batch in self.dataset.iter_batches(batch_format="numpy", batch_size=self.batch_size):
            yield from _records(batch["record"])
