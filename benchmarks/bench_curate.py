"""Curate: the local engine against the Ray engine with 2 workers, on the real ShareGPT file.

The real file is first converted to canonical JSONL shards (``--shards``), so the Ray workers read one shard
each, as they would read a folder of shards on a cluster, and write the kept records and rejects as shard
sets. Each run is its own process (``--repeat`` runs per engine, alternating local, Ray, local, ...), and the
figures are the median run's:

- records/s: records read / wall time of ``run_recipe`` (Ray's includes starting its workers, not ``ray.init``);
- driver peak RSS: the process running the recipe (``ru_maxrss``);
- total peak PSS: every process of the run (the driver, and on Ray its raylet, GCS and workers), sampled every
  0.2 s; PSS counts a shared page (Ray's object store) once, split between the processes that map it.

The kept records (in order, read through each run's stats), the rejects and the per-step counts must be
equal; the bench says whether they are.

    python benchmarks/bench_curate.py --out bench-out/curate.json
    python benchmarks/bench_curate.py --limit 3000 --repeat 1    # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from common import print_table, sharegpt_records, write_figures

STEPS = [{"op": "normalise"}, {"op": "heuristics"}, {"op": "exact_dedup"}, {"op": "near_dedup"}]


def child(engine: str, shards: str, out: str, workers: int) -> None:
    """One run in this process: print its figures as JSON."""
    from oidkit.curate.recipe import load_recipe
    from oidkit.curate.runner import run_recipe

    init_seconds = 0.0
    if engine == "ray":
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - started
    started = time.perf_counter()
    stats = run_recipe(load_recipe(base={"input": shards, "output": out, "engine": engine, "steps": STEPS}),
                       force=True)
    seconds = time.perf_counter() - started
    print(json.dumps({"engine": engine, "seconds": seconds, "ray_init_seconds": init_seconds,
                      "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "read": stats["input"]["rows"], "kept": stats["output"]["records"],
                      "kept_shards": len(stats["output"]["paths"]),
                      "rejects_shards": len(stats["output"]["rejects_paths"])}))


def tree_pss_mb(process: psutil.Process) -> float:
    """PSS of a process and all its descendants, MB (processes that end meanwhile are skipped)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def measure(engine: str, shards: Path, out: Path, workers: int) -> dict:
    """One run in a child process, its process tree's PSS sampled until it ends."""
    child_process = subprocess.Popen([sys.executable, __file__, "--child", engine, str(shards), str(out),
                                      str(workers)], stdout=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(child_process.pid), 0.0
    while child_process.poll() is None:
        try:
            peak = max(peak, tree_pss_mb(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    output, _ = child_process.communicate()
    if child_process.returncode:
        sys.exit(f"the {engine} run failed (exit {child_process.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    return {**result, "records_per_s": result["read"] / result["seconds"], "total_peak_pss_mb": peak}


def outcome(out: Path) -> dict:
    """What a run kept and dropped, read from the files its stats.json names (shard sets on Ray), in order."""
    from oidkit.io import read_jsonl

    stats = json.loads((out / "stats.json").read_text())
    return {"kept_ids": [r["id"] for path in stats["output"]["paths"] for r in read_jsonl(path)],
            "rejects": [(r["operator"], r["reason"], r["record"]["id"])
                        for path in stats["output"]["rejects_paths"] for r in read_jsonl(path)],
            "operators": [{k: v for k, v in step.items() if k != "seconds"} for step in stats["operators"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs (worker processes)")
    parser.add_argument("--shards", type=int, default=2, help="input shards the workers read")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records of the real file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine, alternating; the median is shown")
    parser.add_argument("--out", default=None, help="figures JSON")
    args = parser.parse_args()
    from oidkit.io import write_records

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records = sharegpt_records(args.limit)
        shards = work / "shards"
        write_records(records, shards / "sharegpt.jsonl", shard_size=-(-len(records) // args.shards))
        runs: dict[str, list[dict]] = {"local": [], "ray": []}
        for _ in range(args.repeat):
            for engine, engine_runs in runs.items():
                engine_runs.append(measure(engine, shards, work / engine, args.workers))
        results = {engine: outcome(work / engine) for engine in runs}
    median = {engine: sorted(engine_runs, key=lambda r: r["seconds"])[len(engine_runs) // 2]
              for engine, engine_runs in runs.items()}
    local, on_ray = median["local"], median["ray"]
    same = results["local"] == results["ray"]
    load = " ".join(f"{x:.1f}" for x in psutil.getloadavg())
    rows = [["records read / kept", f"{local['read']:,} / {local['kept']:,}",
             f"{on_ray['read']:,} / {on_ray['kept']:,}", ""],
            ["wall s (median)", f"{local['seconds']:.1f}", f"{on_ray['seconds']:.1f}",
             f"{on_ray['seconds'] / local['seconds']:.2f}"],
            ["records/s", f"{local['records_per_s']:,.0f}", f"{on_ray['records_per_s']:,.0f}",
             f"{on_ray['records_per_s'] / local['records_per_s']:.2f}"],
            ["driver peak RSS MB", f"{local['driver_peak_rss_mb']:,.0f}", f"{on_ray['driver_peak_rss_mb']:,.0f}",
             f"{on_ray['driver_peak_rss_mb'] / local['driver_peak_rss_mb']:.2f}"],
            ["all processes peak PSS MB", f"{local['total_peak_pss_mb']:,.0f}", f"{on_ray['total_peak_pss_mb']:,.0f}",
             f"{on_ray['total_peak_pss_mb'] / local['total_peak_pss_mb']:.2f}"]]
    print_table(f"real ShareGPT, {len(records):,} records in {args.shards} shards: "
                f"{', '.join(s['op'] for s in STEPS)}; load average {load}",
                ["", "local", f"Ray, {args.workers} workers", "Ray / local"], rows)
    print(f"same kept records (in order), rejects and step counts: {same}; Ray wrote {on_ray['kept_shards']} kept "
          f"and {on_ray['rejects_shards']} rejects shards; ray.init took {on_ray['ray_init_seconds']:.1f} s "
          f"(not counted); wall times local {[round(r['seconds'], 1) for r in runs['local']]}, "
          f"Ray {[round(r['seconds'], 1) for r in runs['ray']]}")
    write_figures(args.out, {"records": len(records), "shards": args.shards, "workers": args.workers, "steps": STEPS,
                             "repeat": args.repeat, "load_average": psutil.getloadavg(), "same_results": same,
                             "median": median, "runs": runs})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
