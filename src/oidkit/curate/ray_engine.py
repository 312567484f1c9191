"""The Ray Data engine: the same operators, spread over a Ray cluster.

- Records travel as one JSON string column (``record``), so nested ``meta`` of any shape survives.
- Filters and mappers run in ``map_batches`` on an actor pool (``setup()`` once per actor: models and
  benchmark indexes are built once per worker, not per batch).
- Global operators (dedup, mix, split) compute their small keys in ``map_batches``; the driver resolves
  them (keys are hashes and signatures, small next to the records) and the decisions go back by position
  with ``Dataset.zip``; order is preserved so positions, and therefore results, match the local engine.
- Step checkpoints are sharded Parquet written by Ray; rejects and per-batch tallies stream to the driver,
  which writes ``rejects.jsonl`` and ``stats.json`` exactly as the local engine does.

``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` (e.g. ``ray://head:10001`` or ``auto``), else
starts a local instance.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import ray

from oidkit.curate.base import GlobalOp, Operator
from oidkit.curate.runner import ProgressFn, Tally, apply_decisions, run_batch


def _records(column: Any) -> list[dict]:
    return [orjson.loads(value) for value in column]


def _dump(rows: list[dict]) -> np.ndarray:
    return np.array([orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY).decode() for row in rows], dtype=object)


def _tagged(kept: list[dict], rejects: list[dict], tally: Tally) -> dict[str, np.ndarray]:
    """One output row per input row: a kept record or a reject; the batch tally rides on the first row."""
    n = len(kept) + len(rejects)
    tallies = np.full(n, "", dtype=object)
    if n:
        tallies[0] = pickle.dumps(tally).hex()
    return {"record": np.concatenate([_dump(kept), np.full(len(rejects), "", dtype=object)]),
            "reject": np.concatenate([np.full(len(kept), "", dtype=object), _dump(rejects)]),
            "tally": tallies}


class _ApplyOperator:
    """Actor: holds one set-up operator and applies it (filter / mapper) to batches."""

    def __init__(self, op: Operator, step: str):
        self.op, self.step = op, step
        op.setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _tagged(*run_batch(self.op, self.step, _records(batch["record"])))


class _Keys:
    """Actor: a global operator's per-record keys, pickled (they may be numpy signatures)."""

    def __init__(self, op: GlobalOp):
        self.op = op
        op.setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = _records(batch["record"])
        keys = self.op.keys(records)
        return {"id": np.array([r["id"] for r in records], dtype=object),
                "key": np.array([pickle.dumps(k) for k in keys], dtype=object)}


def _apply_decisions(batch: dict[str, np.ndarray], step: str) -> dict[str, np.ndarray]:
    decisions = [pickle.loads(d) if len(d) else None for d in batch["decision"]]
    return _tagged(*apply_decisions(step, _records(batch["record"]), decisions))


class RayEngine:
    """Same interface as ``LocalEngine``: start / run_step / save / load / iter_records."""

    name = "ray"

    def __init__(self, batch_size: int, progress: ProgressFn):
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # positions must match the keys the driver resolves
        context.enable_progress_bars = False
        self.batch_size, self.progress = batch_size, progress
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.dataset = None

    def start(self, records: list[dict]) -> None:
        self.dataset = ray.data.from_items([{"record": orjson.dumps(r).decode()} for r in records]).materialize()

    def run_step(self, op: Operator, step: str) -> tuple[list[dict], Tally]:
        if isinstance(op, GlobalOp):
            keyed = self.dataset.map_batches(_Keys, fn_constructor_args=(op,), batch_size=self.batch_size,
                                             concurrency=self.workers, batch_format="numpy")
            ids, keys = [], []
            for batch in keyed.iter_batches(batch_format="numpy", batch_size=self.batch_size):
                ids.extend(batch["id"].tolist())
                keys.extend(pickle.loads(k) for k in batch["key"])
                self.progress(f"{step}: keys", len(batch["id"]), None)
            decided = op.resolve(keys, ids)
            column = [pickle.dumps(decided[i]) if i in decided else b"" for i in range(len(keys))]
            decisions = ray.data.from_items([{"decision": d} for d in column])
            tagged = self.dataset.zip(decisions).map_batches(
                _apply_decisions, fn_kwargs={"step": step}, batch_size=self.batch_size, batch_format="numpy")
        else:
            tagged = self.dataset.map_batches(_ApplyOperator, fn_constructor_args=(op, step),
                                              batch_size=self.batch_size, concurrency=self.workers,
                                              batch_format="numpy")
        tagged = tagged.materialize()
        rejects, tally = [], Tally()
        for batch in tagged.select_columns(["reject", "tally"]).iter_batches(batch_format="numpy"):
            rejects.extend(orjson.loads(r) for r in batch["reject"] if r)
            for packed in batch["tally"]:
                if packed:
                    tally.add(pickle.loads(bytes.fromhex(packed)))
            self.progress(step, len(batch["reject"]), None)
        self.dataset = tagged.filter(lambda row: row["record"] != "").select_columns(["record"]).materialize()
        return rejects, tally

    def save(self, folder: Path) -> None:
        self.dataset.write_parquet(str((folder / "records").resolve()))

    @staticmethod
    def saved(folder: Path) -> bool:
        return (folder / "records").is_dir()

    def load(self, folder: Path) -> None:
        self.dataset = ray.data.read_parquet(str((folder / "records").resolve())).materialize()

    def iter_records(self) -> Iterable[dict]:
        for batch in self.dataset.iter_batches(batch_format="numpy", batch_size=self.batch_size):
            yield from _records(batch["record"])
