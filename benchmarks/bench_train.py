"""Fine-tuning throughput: our trainer against TRL's SFTTrainer, padded and at its best, side by side.

Sides: ours packed and padded (transformers' Llama), ours with ``model.impl=oidkit`` (our readable Llama), and
TRL padded, TRL with packing (its best-fit-decreasing strategy, which trains padding-free) and TRL padding-free
without packing (TRL then refuses a ``max_length``; the records are short). Same model, same records (short real
ShareGPT conversations, loss on every token on both sides), sequence length, batch size, method (full or LoRA),
optimizer steps, precision (TRL's defaults of bf16 and gradient checkpointing are set to ours explicitly) and
CPU threads. Each side runs in its own process, so its peak RSS is its own. Printed per side: trained
(non-padding) tokens per second of the training loop (model loading and tokenisation excluded), the mean train loss
of the last 3 steps (equal within noise: the data order differs; every step's loss goes to the JSON, and their
spread shows how much the batches alone move it), peak RSS, and the achieved FLOP/s (6 *
parameters * tokens / s) against the matmul peak measured in the same run.

    python benchmarks/bench_train.py --quick --out bench-out/train.json                 # tiny random Llama
    python benchmarks/bench_train.py --model smollm2-135m-instruct --steps 6 --out bench-out/train.json
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import print_table, sharegpt_records, write_figures
from oidkit.io import read_jsonl, write_jsonl

LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def short_records(count: int, max_chars: int) -> list[dict]:
    """The first ``count`` real ShareGPT records with at most ``max_chars`` characters of text."""
    picked = []
    for record in sharegpt_records():
        size = sum(len(m.get("content") or "") for m in record["messages"])
        if size <= max_chars and any(m["role"] == "assistant" for m in record["messages"]):
            picked.append({"id": record["id"], "messages": [{"role": m["role"], "content": m["content"]}
                                                            for m in record["messages"]]})
        if len(picked) == count:
            break
    return picked


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0, n: int = 1024) -> float:
    """Measured matmul FLOP/s in ``dtype`` with the current torch thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - started)


def parameter_count(model: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    from oidkit.models import resolve_model

    with torch.device("meta"):  # shapes only, no memory, no initialisation
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve_model(model)))
    return sum(p.numel() for p in skeleton.parameters())


def last_losses(losses: list[float]) -> float:
    """The mean train loss of the last 3 steps: one step's loss is too noisy to compare."""
    return sum(losses[-3:]) / len(losses[-3:])


def run_ours(model: str, data: Path, work: Path, args: argparse.Namespace, packing: bool,
             impl: str = "transformers") -> dict:
    from oidkit.train.config import load_train_config
    from oidkit.train.run import run_training

    out = work / f"ours-{impl}-{'packed' if packing else 'padded'}"
    lora = [f"lora.r={LORA['r']}", f"lora.alpha={LORA['alpha']}", f"lora.dropout={LORA['dropout']}",
            f"lora.target_modules={LORA['targets']}"] if args.method == "lora" else []
    config = load_train_config(None, [
        f"model.name={model}", f"model.impl={impl}", f"data.train={data}", f"data.max_seq_len={args.seq_len}",
        "data.overlong=truncate",
        f"data.packing={packing}", f"data.cache_dir={work / 'cache'}", "data.train_on=all", f"method={args.method}",
        *lora, f"train.output_dir={out}", f"train.batch_size={args.batch_size}",
        f"train.max_steps={args.steps}", "optim.warmup_steps=0", "optim.lr=1e-4", f"train.threads={args.threads}",
        f"train.precision={args.precision}"])
    summary = run_training(config)
    with open(out / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["split"] == "train"]
    losses = [float(row["loss"]) for row in rows]
    return {"tokens": summary["tokens"], "seconds": float(rows[-1]["elapsed_s"]), "loss": last_losses(losses),
            "losses": losses}


def run_trl(model: str, records: list[dict], work: Path, args: argparse.Namespace, packing: bool,
            padding_free: bool) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from oidkit.models import resolve_model

    where = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(where)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # TRL refuses padding-free without packing unless max_length is None (it would not enforce it)
    max_length = None if padding_free and not packing else args.seq_len
    config = SFTConfig(output_dir=str(work / "trl"), max_length=max_length,
                       per_device_train_batch_size=args.batch_size, max_steps=args.steps, learning_rate=1e-4,
                       warmup_steps=0, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True,
                       packing=packing, packing_strategy="bfd", padding_free=padding_free,
                       # TRL defaults to bf16 autocast and gradient checkpointing: match our settings instead
                       bf16=args.precision == "bf16", gradient_checkpointing=False,
                       dataloader_num_workers=0, seed=0, disable_tqdm=True)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["targets"], task_type="CAUSAL_LM") if args.method == "lora" else None
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(where), args=config, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(records), peft_config=peft_config)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = max(int(log.get("num_tokens", 0)) for log in trainer.state.log_history)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return {"tokens": tokens, "seconds": seconds, "loss": last_losses(losses), "losses": losses}


SIDES = {
    "ours (packed)": lambda m, w, a, r: run_ours(m, w / "records.jsonl", w, a, packing=True),
    "ours (padded)": lambda m, w, a, r: run_ours(m, w / "records.jsonl", w, a, packing=False),
    "ours impl=oidkit (packed)": lambda m, w, a, r: run_ours(m, w / "records.jsonl", w, a, packing=True,
                                                                    impl="oidkit"),
    "TRL (padded)": lambda m, w, a, r: run_trl(m, r, w, a, packing=False, padding_free=False),
    "TRL (packing bfd)": lambda m, w, a, r: run_trl(m, r, w, a, packing=True, padding_free=True),
    "TRL (padding-free)": lambda m, w, a, r: run_trl(m, r, w, a, packing=False, padding_free=True),
}


def run_side(name: str, model: str, work: Path, args: argparse.Namespace) -> dict:
    """One side in a fresh process (its own peak RSS, no state left by the others): the child prints JSON."""
    command = [sys.executable, __file__, *sys.argv[1:], "--model", model, "--side", name, "--work", str(work)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (random Llama built on the fly) or a folder / alias")
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--max-chars", type=int, default=1500, help="keep records with at most this much text")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both trainers")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="autocast for both trainers")
    parser.add_argument("--quick", action="store_true", help="4 steps, batch size 2")
    parser.add_argument("--out", help="figures JSON")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of: " + ", ".join(SIDES))
    parser.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)  # internal: run one side
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch_size = 4, 2
    unknown = set(args.sides.split(",")) - set(SIDES)
    if unknown:
        parser.error(f"unknown sides {sorted(unknown)}; choose from: {', '.join(SIDES)}")
    torch.set_num_threads(args.threads)
    if args.side:
        work = Path(args.work)
        result = SIDES[args.side](args.model, work, args, list(read_jsonl(work / "records.jsonl")))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records = short_records(args.records, args.max_chars)
        model = args.model
        if model == "tiny":
            from oidkit.models.tiny import build_tiny_model
            from oidkit.records import text

            # its BPE is trained on these records, so it tokenises them about as compactly as a real tokenizer
            model = str(build_tiny_model(work / "tiny", vocab_size=4096, hidden_size=256, num_layers=4,
                                         num_heads=8, num_kv_heads=4, intermediate_size=688,
                                         max_position_embeddings=args.seq_len, corpus=[text(r) for r in records]))
        write_jsonl(work / "records.jsonl", records)
        n_params = parameter_count(model)
        peak = matmul_peak(torch.bfloat16 if args.precision == "bf16" else torch.float32)
        results = {name: run_side(name, model, work, args) for name in args.sides.split(",")}
    rate = {name: result["tokens"] / result["seconds"] for name, result in results.items()}
    trl_padded = rate.get("TRL (padded)")
    trl_best = max((name for name in rate if name.startswith("TRL")), key=rate.get, default=None)
    rows, figures = [], {"model": args.model, "params": n_params, "records": len(records), "seq_len": args.seq_len,
                         "batch_size": args.batch_size, "steps": args.steps, "threads": args.threads,
                         "method": args.method, "precision": args.precision, "matmul_peak_flops": peak,
                         "trl_best": trl_best, "runs": {}}
    for name, result in results.items():
        flops = 6 * n_params * rate[name]
        rows.append([name, f"{result['tokens']:,}", f"{result['seconds']:.1f}", f"{rate[name]:,.0f}",
                     f"{rate[name] / trl_padded:.2f}x" if trl_padded else "-",
                     f"{rate[name] / rate[trl_best]:.2f}x" if trl_best else "-",
                     f"{result['losses'][0]:.3f}", f"{result['loss']:.3f}", f"{result['peak_rss_mb']:,.0f}",
                     f"{flops / 1e9:.2f}", f"{100 * flops / peak:.0f}%"])
        figures["runs"][name] = {**result, "tokens_per_s": rate[name], "flops": flops,
                                 "ratio_to_trl_padded": rate[name] / trl_padded if trl_padded else None,
                                 "ratio_to_trl_best": rate[name] / rate[trl_best] if trl_best else None}
    print_table(f"fine-tuning throughput: {args.model}, {n_params / 1e6:.1f}M params, {args.method}, seq "
                f"{args.seq_len}, batch {args.batch_size}, {args.steps} steps, {args.precision}, {args.threads} "
                f"thread(s); {args.precision} matmul peak {peak / 1e9:.1f} GFLOP/s; TRL's best: {trl_best}",
                ["trainer", "trained tokens", "loop s", "tokens/s", "vs TRL padded", "vs TRL best",
                 "loss step 1", "loss (last 3 steps)", "peak RSS MB", "GFLOP/s", "of peak"], rows)
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
