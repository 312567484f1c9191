"""Near-dedup: oidkit's vectorised MinHash + LSH against datasketch's MinHash + MinHashLSH, on real ShareGPT.

Both sides get the same shingles (word 5-grams, or character 5-grams for mostly-CJK texts) of the whole
conversation text of every complete record, num_perm=128, threshold 0.8, and are timed over the whole
path: shingling, signatures, LSH, connected components. datasketch: ``MinHash.update_batch`` over the
encoded shingle strings, ``MinHashLSH.insert`` then ``query`` for every record. oidkit:
``minhash_signatures`` + ``duplicate_clusters`` (with the threshold check on candidate pairs, as the
``near_dedup`` operator runs it), with 1 and 2 worker processes. Agreement: Jaccard of the sets of records
flagged as duplicates (every cluster member but the first), and of the (duplicate, first member) pairs,
between the two sides, between datasketch and itself with another seed (how much two correct LSH runs
differ on pairs near the threshold), and of each side with clusters by exact Jaccard of the shingle sets.

    python benchmarks/bench_dedup.py --limit 2000            # quick
    python benchmarks/bench_dedup.py --out bench-out/dedup.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from datasketch import MinHash, MinHashLSH
from rich.progress import track
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from common import print_table, sharegpt_records, write_figures
from oidkit.curate.minhash import (
    VERIFIED_FALSE_NEGATIVE_WEIGHT,
    duplicate_clusters,
    lsh_params,
    minhash_signatures,
    shingles,
)
from oidkit.records import text


def oidkit_labels(texts: list[str], threshold: float, num_perm: int, workers: int) -> np.ndarray:
    signatures = minhash_signatures(texts, num_perm=num_perm, workers=workers)
    bands, rows = lsh_params(threshold, num_perm, VERIFIED_FALSE_NEGATIVE_WEIGHT)
    return duplicate_clusters(signatures, bands=bands, rows=rows, threshold=threshold)


def components(left: list[int], right: list[int], count: int) -> np.ndarray:
    """Label of each of ``count`` rows: the smallest row of its connected component."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    _, first_row = np.unique(component, return_index=True)
    return first_row[component]


def datasketch_labels(texts: list[str], threshold: float, num_perm: int, seed: int = 1) -> np.ndarray:
    """datasketch's documented recipe: a MinHash per text, insert all, query each, then components."""
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = []
    for i, document in enumerate(track(texts, description=f"datasketch, seed {seed}", transient=True)):
        sketch = MinHash(num_perm=num_perm, seed=seed)
        sketch.update_batch([shingle.encode("utf-8", "surrogatepass") for shingle in shingles(document)])
        if sketch.is_empty():  # as ours: an empty text is nobody's duplicate
            sketches.append(None)
            continue
        index.insert(i, sketch)
        sketches.append(sketch)
    left, right = [], []
    for i, sketch in enumerate(sketches):
        if sketch is not None:
            for j in index.query(sketch):
                left.append(i)
                right.append(j)
    return components(left, right, len(texts))


def exact_labels(texts: list[str], threshold: float, num_perm: int) -> np.ndarray:
    """Clusters by exact Jaccard of the shingle sets, the ground truth both sides approximate.

    Comparing all pairs is out of reach, so loose clusters come first (32 bands of 4 rows and an estimated
    Jaccard of 0.6: a pair at 0.8 is missed with probability far below 1e-6), then every pair inside a
    loose cluster is compared exactly.
    """
    loose = duplicate_clusters(minhash_signatures(texts, num_perm=num_perm), bands=32, rows=num_perm // 32,
                               threshold=threshold - 0.2)
    members: dict[int, list[int]] = {}
    for i, label in enumerate(loose.tolist()):
        members.setdefault(label, []).append(i)
    left, right = [], []
    for group in (g for g in members.values() if len(g) > 1):
        sets = {i: shingles(texts[i]) for i in group}
        for position, i in enumerate(group):
            for j in group[position + 1 :]:
                if jaccard(sets[i], sets[j]) >= threshold:
                    left.append(i)
                    right.append(j)
    return components(left, right, len(texts))


def duplicate_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """(record, first record of its cluster) for every record flagged as a duplicate."""
    return {(i, int(label)) for i, label in enumerate(labels) if label != i}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed(function, *args) -> tuple[float, float, np.ndarray]:
    """Wall seconds, CPU seconds (less sensitive to other jobs on the machine) and the result."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    return time.perf_counter() - start, cpu_seconds() - start_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N records")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="oidkit runs per worker count (median is reported)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    texts = [text(record) for record in sharegpt_records(args.limit)]
    print(f"{len(texts)} records, {sum(map(len, texts)) / 1e6:.1f}M characters")

    peer_seconds, peer_cpu, peer = timed(datasketch_labels, texts, args.threshold, args.num_perm)
    ours, ours_seconds, ours_cpu = {}, {}, {}
    for workers in (1, 2):
        runs = [timed(oidkit_labels, texts, args.threshold, args.num_perm, workers) for _ in range(args.repeat)]
        ours_seconds[workers] = statistics.median(seconds for seconds, _, _ in runs)
        ours_cpu[workers] = statistics.median(cpu for _, cpu, _ in runs)
        ours[workers] = runs[0][2]

    peer_seed2 = datasketch_labels(texts, args.threshold, args.num_perm, seed=2)
    truth = exact_labels(texts, args.threshold, args.num_perm)

    def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """Jaccard of the flagged records, and of the (duplicate, kept) pairs."""
        pairs_a, pairs_b = duplicate_pairs(a), duplicate_pairs(b)
        return jaccard({i for i, _ in pairs_a}, {i for i, _ in pairs_b}), jaccard(pairs_a, pairs_b)

    comparisons = {
        "oidkit vs datasketch": agreement(ours[1], peer),
        "datasketch seed 1 vs seed 2 (noise floor)": agreement(peer_seed2, peer),
        "datasketch vs exact Jaccard": agreement(peer, truth),
        "oidkit vs exact Jaccard": agreement(ours[1], truth),
    }
    flagged = {name: len(duplicate_pairs(labels)) for name, labels in
               [("datasketch", peer), ("oidkit", ours[1]), ("exact", truth)]}
    sides = ["datasketch"] + [f"oidkit, {w} worker{'s' * (w > 1)}" for w in ours_seconds]
    seconds = dict(zip(sides, [peer_seconds, *ours_seconds.values()], strict=True))
    cpu = dict(zip(sides, [peer_cpu, *ours_cpu.values()], strict=True))
    rate = {side: len(texts) / s for side, s in seconds.items()}
    rows = [[side, len(texts), f"{seconds[side]:.2f}", f"{rate[side]:,.0f}", f"{rate[side] / rate['datasketch']:.1f}x",
             f"{cpu[side]:.2f}", f"{cpu['datasketch'] / cpu[side]:.1f}x"] for side in sides]
    bands, lsh_rows = lsh_params(args.threshold, args.num_perm, VERIFIED_FALSE_NEGATIVE_WEIGHT)
    print_table(f"Near-dedup, num_perm={args.num_perm}, threshold={args.threshold}, bands={bands} rows={lsh_rows}",
                ["side", "records", "wall s", "records/s", "speed-up", "CPU s", "CPU speed-up"],
                rows)
    print_table(f"Agreement of the flagged duplicates (flagged: {flagged})",
                ["comparison", "flagged records", "(duplicate, kept) pairs"],
                [[name, f"{records:.4f}", f"{pairs:.4f}"] for name, (records, pairs) in comparisons.items()])
    print(f"2 workers give the same clusters as 1: {bool((ours[1] == ours[2]).all())}")
    write_figures(args.out, {
        "records": len(texts), "num_perm": args.num_perm, "threshold": args.threshold,
        "bands": bands, "rows": lsh_rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "records_per_second": rate,
        "speedup_vs_datasketch": {side: r / rate["datasketch"] for side, r in rate.items()},
        "flagged": flagged,
        "agreement": {name: {"flagged_records_jaccard": records, "pairs_jaccard": pairs}
                      for name, (records, pairs) in comparisons.items()},
    })


if __name__ == "__main__":
    main()
