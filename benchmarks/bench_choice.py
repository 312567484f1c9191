"""Multiple choice on real CMMLU questions, 5-shot, SmolLM2-135M: our one-pass scoring against the per-option path.

Ours (``evaluate_choices``) scores the four letters from one forward pass and reuses the shared few-shot prefix's
KV cache across the questions of a subject; the peer runs the whole prompt once per option
(``continuation_logprobs``, the way it was done before). Checks the same choices and reports the largest
log-probability difference. The peer is slow (minutes), so each side runs once: the ratio is far above the noise.

    .venv/bin/python benchmarks/bench_choice.py --out bench-out/choice.json [--limit 20]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from common import print_table, write_figures

SHARED_DATA = Path(os.environ.get("OIDKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--limit", type=int, default=20, help="questions in all, taken evenly from the subjects")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from oidkit.evaluate.choice import LETTERS, build_prompt, continuation_logprobs, evaluate_choices
    from oidkit.evaluate.tasks import load_task
    from oidkit.models import load_model

    files = sorted((SHARED_DATA / "cmmlu" / "test").glob("*.csv"))
    if not files:
        raise SystemExit(f"CMMLU files not found under {SHARED_DATA}/cmmlu/test (set OIDKIT_SHARED_DATA)")
    per_file = -(-args.limit // len(files))
    examples = [e for f in files for e in load_task(f, limit=per_file, shots=5).examples][: args.limit]
    model, tokenizer = load_model("smollm2-135m-instruct")

    start = time.perf_counter()
    ours = evaluate_choices(model, tokenizer, examples)["examples"]
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = [continuation_logprobs(model, tokenizer, build_prompt(e), list(LETTERS[:len(e.choices)]))
              for e in examples]
    theirs_seconds = time.perf_counter() - start

    same = all(row["predicted"] == LETTERS[max(range(len(s)), key=s.__getitem__)]
               for row, s in zip(ours, theirs, strict=True))
    difference = max(abs(a - b) for row, s in zip(ours, theirs, strict=True)
                     for a, b in zip(row["logprobs"], s, strict=True))
    prompt_tokens = sum(len(tokenizer(build_prompt(e), add_special_tokens=False)["input_ids"]) for e in examples)
    figures = {"model": "SmolLM2-135M-Instruct (float32, CPU)", "threads": torch.get_num_threads(),
               "questions": len(examples), "shots": 5, "mean_prompt_tokens": prompt_tokens / len(examples),
               "seconds": {"per_option": theirs_seconds, "ours": ours_seconds},
               "speedup": theirs_seconds / ours_seconds, "same_choices": same,
               "max_logprob_difference": difference}
    print_table(f"multiple choice, {len(examples)} CMMLU questions, 5-shot (seconds)",
                ["", "per option (old)", "ours", "ratio"],
                [["wall time", f"{theirs_seconds:.1f}", f"{ours_seconds:.1f}", f"{figures['speedup']:.1f}x"]])
    print(f"same choices: {same}; max |log-prob difference| {difference:.1e} (float32 rounding, see tests)")
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
