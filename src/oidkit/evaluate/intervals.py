"""Paired bootstrap intervals for ``oid eval --compare``: is model B better than model A on the same items?

Every per-item score both models have (ROUGE-L, exact match, F1, perplexity, GSM8K or multiple-choice
correctness) gets ``core.stats.paired_bootstrap``; BLEU and chrF are corpus scores, so their intervals are
over sentence-level BLEU / chrF of the same outputs (``task_metrics.sentence_bleu`` / ``sentence_chrf``).
"""

from __future__ import annotations

from oidkit.core.stats import paired_bootstrap
from oidkit.evaluate.task_metrics import sentence_bleu, sentence_chrf

RESAMPLES = 1000
SEED = 0


def per_item_scores(examples: list[dict]) -> dict[str, list[float]]:
    """Numeric per-example fields (booleans as 0/1) and, for generations, sentence BLEU and chrF."""
    if not examples:
        return {}
    scores: dict[str, list[float]] = {}
    if "output" in examples[0] and "reference" in examples[0]:
        scores["bleu_sentence"] = [sentence_bleu(e["output"], e["reference"]) for e in examples]
        scores["chrf_sentence"] = [sentence_chrf(e["output"], e["reference"]) for e in examples]
    for key, value in examples[0].items():
        if isinstance(value, (bool, int, float)) and key != "id" and all(
                isinstance(e.get(key), (bool, int, float)) for e in examples):
            scores[key] = [float(e[key]) for e in examples]
    return scores


def compare_intervals(report: dict, *, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, dict[str, dict]]:
    """``{task: {metric: {diff, low, high, excludes_zero, n}}}`` of B - A for a two-model report."""
    first, second = (report["results"][m] for m in report["models"])
    intervals: dict[str, dict[str, dict]] = {}
    for task, result in first.items():
        a, b = per_item_scores(result["examples"]), per_item_scores(second[task]["examples"])
        intervals[task] = {metric: {**paired_bootstrap(a[metric], b[metric], resamples=resamples, seed=seed),
                                    "n": len(a[metric])}
                           for metric in a if metric in b and len(a[metric]) == len(b[metric])}
    return intervals


def intervals_markdown(intervals: dict[str, dict], models: list[str], resamples: int = RESAMPLES) -> str:
    """One table per task: per-item mean difference B - A with its 95% interval and whether it excludes 0."""
    lines = []
    for task, rows in intervals.items():
        if not rows:
            continue
        lines += [f"### {task}: {models[1]} - {models[0]}, per-item mean, paired bootstrap 95% interval "
                  f"({resamples} resamples, seed {SEED})", "", "| metric | n | B - A | 95% interval | excludes 0 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {metric} | {row['n']} | {row['diff']:+.4f} | [{row['low']:+.4f}, {row['high']:+.4f}] | "
                  f"{'yes' if row['excludes_zero'] else 'no'} |" for metric, row in rows.items()]
        lines.append("")
    return "\n".join(lines)
