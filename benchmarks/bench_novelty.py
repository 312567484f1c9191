"""Self-Instruct novelty filter: ours against plain rouge-score pairwise, on real ShareGPT instructions.

The peer is what Self-Instruct does: score each new instruction against every instruction in the pool
with ``rouge_score`` and drop it when the best ROUGE-L F exceeds 0.7. All pairs are too slow to run on
~17k instructions, so the peer runs on a subset (where both must make exactly the same decisions) and
its full-set time is extrapolated from its per-comparison cost, and printed as such.

    python benchmarks/bench_novelty.py --subset 120 --out bench-out/novelty.json
"""

from __future__ import annotations

import argparse
import random
import time

from rouge_score import rouge_scorer

from common import print_table, sharegpt_records, write_figures
from oidkit.records import first_user
from oidkit.synth.novelty import filter_novel


def rouge_score_filter(texts: list[str], threshold: float) -> tuple[list[bool], int]:
    """Self-Instruct's loop with rouge-score; returns decisions and the number of pairs scored."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool: list[str] = []
    keep, pairs = [], 0
    for text in texts:
        scores = [scorer.score(text, p)["rougeL"].fmeasure for p in pool]
        pairs += len(scores)
        ok = not scores or max(scores) <= threshold
        keep.append(ok)
        if ok:
            pool.append(text)
    return keep, pairs


def comparisons(decisions: list[bool]) -> int:
    """Pairs the all-pairs filter scores for these decisions: each text against the pool before it."""
    pool = total = 0
    for kept in decisions:
        total += pool
        pool += kept
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subset", type=int, default=120, help="instructions the rouge-score peer runs on")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N records")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    instructions = [t for t in (first_user(r) for r in sharegpt_records(args.limit)) if t.strip()]
    subset = random.Random(0).sample(instructions, min(args.subset, len(instructions)))

    start = time.perf_counter()
    ours_full = filter_novel(instructions, args.threshold)
    ours_full_s = time.perf_counter() - start

    start = time.perf_counter()
    ours_subset = filter_novel(subset, args.threshold)
    ours_subset_s = time.perf_counter() - start
    start = time.perf_counter()
    peer_subset, peer_pairs = rouge_score_filter(subset, args.threshold)
    peer_subset_s = time.perf_counter() - start

    same = ours_subset == peer_subset
    full_pairs = comparisons(ours_full)
    peer_full_s = peer_subset_s / max(peer_pairs, 1) * full_pairs
    subset_ratio = peer_subset_s / ours_subset_s
    full_ratio = peer_full_s / ours_full_s
    rows = [
        ["subset: instructions", len(subset), len(subset), ""],
        ["subset: seconds (measured)", f"{ours_subset_s:.3f}", f"{peer_subset_s:.2f}",
         f"{subset_ratio:.0f}x"],
        ["subset: kept", sum(ours_subset), sum(peer_subset), "identical" if same else "DIFFERENT"],
        ["full: instructions", len(instructions), len(instructions), ""],
        ["full: seconds", f"{ours_full_s:.2f} (measured)", f"{peer_full_s:.0f} (extrapolated)",
         f"{full_ratio:.0f}x"],
        ["full: kept", sum(ours_full), "", ""],
    ]
    title = f"Novelty filter (ROUGE-L > {args.threshold:.2f} drops): oidkit vs rouge-score pairwise"
    print_table(title, ["", "oidkit", "rouge-score", "ratio"], rows)
    if not same:
        diff = [i for i, (a, b) in enumerate(zip(ours_subset, peer_subset, strict=True)) if a != b]
        print(f"decisions differ at subset positions {diff[:10]}")
    write_figures(args.out, {
        "threshold": args.threshold,
        "subset_size": len(subset), "subset_identical_decisions": same,
        "subset_seconds": {"oidkit": ours_subset_s, "rouge_score": peer_subset_s},
        "subset_speedup": subset_ratio,
        "full_size": len(instructions), "full_kept": sum(ours_full),
        "full_seconds": {"oidkit": ours_full_s, "rouge_score_extrapolated": peer_full_s},
        "full_speedup_vs_extrapolated": full_ratio,
    })
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
