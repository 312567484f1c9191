"""Curate: the local engine against the Ray engine with 2 workers, on the real ShareGPT file.

The real file is first converted to canonical JSONL shards (``--shards``, by ``oid convert --shard-size``),
so the Ray workers read one shard each, as they would read a folder of shards on a cluster. Both engines
run the same recipe on the same folder; the kept records, the rejects and the per-step counts must be
equal, and the wall time of each run is reported (Ray's includes starting its workers, not ``ray.init``).

    python benchmarks/bench_curate.py --out bench-out/curate.json
    python benchmarks/bench_curate.py --limit 3000          # quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import islice
from pathlib import Path

from common import print_table, sharegpt_path, write_figures
from oidkit.curate.recipe import load_recipe
from oidkit.curate.runner import run_recipe
from oidkit.io import read_jsonl, read_records, write_records

STEPS = [{"op": "normalise"}, {"op": "heuristics"}, {"op": "exact_dedup"}, {"op": "near_dedup"}]


def run(engine: str, shards: Path, out: Path) -> dict:
    started = time.perf_counter()
    stats = run_recipe(load_recipe(base={"input": str(shards), "output": str(out), "engine": engine,
                                         "steps": STEPS}))
    seconds = time.perf_counter() - started
    return {"engine": engine, "seconds": seconds, "read": stats["input"]["rows"], "kept": stats["output"]["records"],
            "operators": [{k: v for k, v in step.items() if k != "seconds"} for step in stats["operators"]],
            "kept_ids": [r["id"] for r in read_jsonl(out / "kept.jsonl")],
            "rejects": [(r["operator"], r["reason"], r["record"]["id"]) for r in read_jsonl(out / "rejects.jsonl")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs (worker processes)")
    parser.add_argument("--shards", type=int, default=2, help="input shards the workers read")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records of the real file")
    parser.add_argument("--out", default=None, help="figures JSON")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records = list(islice(read_records(sharegpt_path(), salvage=True), args.limit))
        shards = work / "shards"
        write_records(records, shards / "sharegpt.jsonl", shard_size=-(-len(records) // args.shards))
        local = run("local", shards, work / "local")
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        try:
            on_ray = run("ray", shards, work / "ray")
        finally:
            ray.shutdown()
    same = all(local[key] == on_ray[key] for key in ("read", "kept", "operators", "kept_ids", "rejects"))
    print_table(f"real ShareGPT, {len(records):,} records in {args.shards} shards: {', '.join(s['op'] for s in STEPS)}",
                ["engine", "records read", "kept", "wall s"],
                [[r["engine"] if r is local else f"ray, {args.workers} workers", f"{r['read']:,}", f"{r['kept']:,}",
                  f"{r['seconds']:.1f}"] for r in (local, on_ray)])
    print(f"same kept records, rejects and step counts: {same}; ray/local wall time "
          f"{on_ray['seconds'] / local['seconds']:.2f}")
    write_figures(args.out, {"records": len(records), "shards": args.shards, "workers": args.workers, "steps": STEPS,
                             "same_results": same, **{r["engine"]: {k: r[k] for k in ("seconds", "read", "kept")}
                                                      for r in (local, on_ray)}})


if __name__ == "__main__":
    main()
