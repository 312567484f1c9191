"""Review app latency on the real ShareGPT file: list pages and record opens against the 300 ms budget.

The app runs as ``oid review`` in its own process (uvicorn on 127.0.0.1); httpx times requests over
loopback. The data is the real, truncated ShareGPT V3 file read with ``--salvage``, plus the rows ingest
rejected as a rejects file (about 17.6k items in all), so the reject view and its filters are timed too.
Each operation is timed ``--requests`` times with varied pages, filters and search words (seeded).

    python benchmarks/bench_review.py --out bench-out/review.json
    python benchmarks/bench_review.py --quick
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from common import print_table, sharegpt_path, write_figures

BUDGET_MS = 300
SEARCH_WORDS = ["python", "function", "marketing", "essay", "table", "error", "recipe", "sql", "zzqx-none", "한국"]


def write_rejects(source: Path, folder: Path) -> tuple[int, int, Path]:
    """The ingest rejects of the salvaged read, as the rejects file ``oid review --rejects`` takes."""
    from oidkit.io import read_records, write_jsonl

    rejects: list[dict] = []
    records = sum(1 for _ in read_records(source, salvage=True, on_reject=rejects.append))
    path = folder / "ingest.rejects.jsonl"
    write_jsonl(path, rejects)
    return records, len(rejects), path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(source: Path, rejects: Path, log: Path) -> tuple[subprocess.Popen, httpx.Client, float]:
    port = free_port()
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "oidkit.cli", "review", str(source), "--salvage", "--rejects",
                                str(rejects), "--log", str(log), "--port", str(port), "--annotator", "bench"],
                               stdout=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    for _ in range(1200):
        try:
            if client.get("/api/meta").status_code == 200:
                return process, client, time.perf_counter() - began
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    sys.exit("oid review did not start within 120 s")


def timed(client: httpx.Client, path: str, params: dict) -> tuple[float, dict]:
    began = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = (time.perf_counter() - began) * 1000
    response.raise_for_status()
    return elapsed, response.json()


def run(requests: int, seed: int) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        source = sharegpt_path()
        records, rejected, rejects = write_rejects(source, Path(tmp))
        began = time.perf_counter()
        process, client, startup = start(source, rejects, Path(tmp) / "review.jsonl")
        try:
            meta = client.get("/api/meta").json()
            while meta["languages"] is None:  # py3langid runs in a child process after start
                time.sleep(0.5)
                meta = client.get("/api/meta").json()
            languages_ready = time.perf_counter() - began
            pages = meta["counts"]["data"] // 50
            keys = [row["key"] for offset in range(0, meta["counts"]["data"], 2000)
                    for row in client.get("/api/records", params={"offset": offset, "limit": 1}).json()["items"]]
            keys += [f"reject:{i}" for i in range(0, rejected, max(1, rejected // 20))]
            operations = {
                "list page": lambda: {"offset": 50 * rng.randrange(pages)},
                "list + search": lambda: {"q": rng.choice(SEARCH_WORDS)},
                "list + filters": lambda: {"min_turns": rng.choice([2, 4, 8]), "min_chars": rng.choice([0, 2000]),
                                           "max_chars": 20000, "status": "unreviewed", "annotator": "bench"},
                "list + language": lambda: {"lang": rng.choice(["en", "zh", "ko", "es"])},
                "rejects by reason": lambda: {"view": "reject", "reason": rng.choice(meta["reasons"])},
            }
            timings: dict[str, list[float]] = {name: [] for name in [*operations, "open record"]}
            for _ in range(requests):
                for name, params in operations.items():
                    timings[name].append(timed(client, "/api/records", params())[0])
                timings["open record"].append(timed(client, "/api/item", {"key": rng.choice(keys)})[0])
        finally:
            process.terminate()
            process.wait(timeout=10)
    figures = {"records": records, "rejects": rejected, "items": records + rejected, "startup_s": round(startup, 2),
               "languages_ready_s": round(languages_ready, 2),
               "budget_ms": BUDGET_MS, "requests_per_operation": requests, "operations": {}}
    for name, values in timings.items():
        p50, p95 = np.percentile(values, [50, 95])
        figures["operations"][name] = {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
                                       "p95_over_budget": round(float(p95) / BUDGET_MS, 3)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per operation")
    parser.add_argument("--quick", action="store_true", help="15 requests per operation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    figures = run(15 if args.quick else args.requests, args.seed)
    print(f"{figures['items']:,} items ({figures['records']:,} records + {figures['rejects']:,} ingest rejects); "
          f"server ready in {figures['startup_s']} s, languages identified after {figures['languages_ready_s']} s")
    print_table(f"oid review over loopback, {figures['requests_per_operation']} requests each",
                ["operation", "p50 ms", "p95 ms", "budget ms", "p95 / budget"],
                [[name, f"{o['p50_ms']:.1f}", f"{o['p95_ms']:.1f}", BUDGET_MS, f"{o['p95_over_budget']:.2f}"]
                 for name, o in figures["operations"].items()])
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
