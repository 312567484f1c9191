"""oid report on the real ShareGPT file against its budget (60 s), beside a naive pandas describe.

Ours is the whole report, end to end: read the truncated ShareGPT JSON (salvaging the complete records),
language id, token lengths, verb-noun view, figures, HTML, stats.json and the dataset card. The peer is
what a practitioner types first: the records already in memory, one pandas row per message, whitespace
token counts and ``describe()`` per role, which gives a fraction of the numbers and no page. The ratio says
what the full report costs over that; the budget is the target.

    python benchmarks/bench_report.py --out bench-out/report.json
    python benchmarks/bench_report.py --quick       # the first 2,000 records
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import islice
from pathlib import Path

import pandas as pd

from common import print_table, sharegpt_path, write_figures
from oidkit.io import read_records, write_jsonl
from oidkit.report.build import build_report

BUDGET_SECONDS = 60.0


def pandas_describe(records: list[dict]) -> pd.DataFrame:
    """Per-role whitespace token lengths and turns per record, described by pandas."""
    rows = [{"record": i, "role": m["role"], "content": m["content"] or ""}
            for i, r in enumerate(records) for m in r["messages"]]
    frame = pd.DataFrame(rows)
    frame["tokens"] = frame["content"].str.split().str.len()
    lengths = frame.groupby("role")["tokens"].describe(percentiles=[0.1, 0.5, 0.9, 0.99])
    turns = frame[frame["role"] != "system"].groupby("record").size().describe()
    return pd.concat([lengths, turns.to_frame("turns").T])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the first 2,000 records")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = sharegpt_path()
        if args.quick:
            data = Path(tmp) / "sharegpt-2000.jsonl"
            write_jsonl(data, islice(read_records(sharegpt_path(), salvage=True, on_reject=lambda r: None), 2000))
        started = time.perf_counter()
        stats = build_report(data, Path(tmp) / "report", salvage=True)
        ours = time.perf_counter() - started

        records = list(read_records(data, salvage=True, on_reject=lambda r: None))
        started = time.perf_counter()
        pandas_describe(records)
        peer = time.perf_counter() - started

    overview = stats["overview"]
    # The budget is for the whole file; a --quick run only checks that everything works.
    within = None if args.quick else ours <= BUDGET_SECONDS
    verdict = {None: "n/a (--quick)", True: "yes", False: "NO"}[within]
    rows = [["oid report (read + everything)", f"{ours:.1f}", f"{ours / peer:.1f}x", f"{BUDGET_SECONDS:.0f}", verdict],
            ["pandas describe (in memory)", f"{peer:.1f}", "1.0x", "", ""]]
    print_table(f"report on {overview['records']:,} records, {overview['turns']:,} turns",
                ["", "seconds", "ratio", "budget s", "within budget"], rows)
    write_figures(args.out, {"records": overview["records"], "turns": overview["turns"],
                             "rejected_on_read": stats["rejects"]["total"] if stats["rejects"] else 0,
                             "report_seconds": round(ours, 2), "pandas_describe_seconds": round(peer, 2),
                             "ratio": round(ours / peer, 2), "budget_seconds": BUDGET_SECONDS,
                             "within_budget": within})


if __name__ == "__main__":
    main()
