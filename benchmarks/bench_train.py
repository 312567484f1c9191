"""Fine-tuning throughput: our trainer (packed and unpacked) against TRL's SFTTrainer, side by side.

Our trainer runs transformers' Llama and, with ``model.impl=oidkit``, our readable one. Same model, same
records (short real ShareGPT conversations), same sequence length, batch size, LoRA settings, optimizer steps,
autocast precision (TRL's defaults of bf16 and gradient checkpointing are set to ours explicitly) and CPU
threads. The figure is trained (non-padding) tokens per second of the training loop (model loading and
tokenisation excluded on both sides), plus the achieved FLOP/s (6 * parameters * tokens / s) against a
measured matmul peak of this machine.

    python benchmarks/bench_train.py --out bench-out/train.json            # tiny random Llama
    python benchmarks/bench_train.py --model smollm2-135m-instruct --steps 6 --out bench-out/train-smollm2.json
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from common import print_table, sharegpt_records, write_figures
from oidkit.io import write_jsonl

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


def run_ours(model: str, data: Path, work: Path, args: argparse.Namespace, packing: bool,
             impl: str = "transformers") -> dict:
    from oidkit.train.config import load_train_config
    from oidkit.train.run import run_training

    out = work / f"ours-{impl}-{'packed' if packing else 'padded'}"
    config = load_train_config(None, [
        f"model.name={model}", f"model.impl={impl}", f"data.train={data}", f"data.max_seq_len={args.seq_len}",
        "data.overlong=truncate",
        f"data.packing={packing}", f"data.cache_dir={work / 'cache'}", "data.train_on=all", "method=lora",
        f"lora.r={LORA['r']}", f"lora.alpha={LORA['alpha']}", f"lora.dropout={LORA['dropout']}",
        f"lora.target_modules={LORA['targets']}", f"train.output_dir={out}", f"train.batch_size={args.batch_size}",
        f"train.max_steps={args.steps}", "optim.warmup_steps=0", "optim.lr=1e-4", f"train.threads={args.threads}",
        f"train.precision={args.precision}"])
    summary = run_training(config)
    with open(out / "metrics.csv") as f:
        seconds = float(list(csv.DictReader(f))[-1]["elapsed_s"])
    return {"tokens": summary["tokens"], "seconds": seconds}


def run_trl(model: str, records: list[dict], work: Path, args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from oidkit.models import resolve_model

    where = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(where)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = SFTConfig(output_dir=str(work / "trl"), max_length=args.seq_len,
                       per_device_train_batch_size=args.batch_size, max_steps=args.steps, learning_rate=1e-4,
                       warmup_steps=0, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True,
                       # TRL defaults to bf16 autocast and gradient checkpointing: match our settings instead
                       bf16=args.precision == "bf16", gradient_checkpointing=False,
                       dataloader_num_workers=0, seed=0, disable_tqdm=True)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["targets"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(where), args=config, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(records), peft_config=peft_config)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = max(int(log.get("num_tokens", 0)) for log in trainer.state.log_history)
    return {"tokens": tokens, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (random Llama built on the fly) or a folder / alias")
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--max-chars", type=int, default=1500, help="keep records with at most this much text")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both trainers")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="autocast for both trainers")
    parser.add_argument("--quick", action="store_true", help="4 steps, batch size 2")
    parser.add_argument("--out", help="figures JSON")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch_size = 4, 2
    torch.set_num_threads(args.threads)

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
        results = {"ours (packed)": run_ours(model, work / "records.jsonl", work, args, packing=True),
                   "ours (padded)": run_ours(model, work / "records.jsonl", work, args, packing=False),
                   "ours, model.impl=oidkit (packed)": run_ours(model, work / "records.jsonl", work, args,
                                                                 packing=True, impl="oidkit"),
                   "TRL SFTTrainer (padded)": run_trl(model, records, work, args)}
    peak = matmul_peak(torch.bfloat16 if args.precision == "bf16" else torch.float32)
    trl_rate = results["TRL SFTTrainer (padded)"]["tokens"] / results["TRL SFTTrainer (padded)"]["seconds"]
    rows, figures = [], {"model": args.model, "params": n_params, "records": len(records), "seq_len": args.seq_len,
                         "batch_size": args.batch_size, "steps": args.steps, "threads": args.threads,
                         "precision": args.precision,
                         "matmul_peak_flops": peak, "runs": {}}
    for name, result in results.items():
        rate = result["tokens"] / result["seconds"]
        flops = 6 * n_params * rate
        rows.append([name, f"{result['tokens']:,}", f"{result['seconds']:.1f}", f"{rate:,.0f}",
                     f"{rate / trl_rate:.2f}x", f"{flops / 1e9:.2f}", f"{100 * flops / peak:.0f}%"])
        figures["runs"][name] = {**result, "tokens_per_s": rate, "ratio_to_trl": rate / trl_rate, "flops": flops}
    print_table(f"fine-tuning throughput: {args.model}, {n_params / 1e6:.1f}M params, seq {args.seq_len}, "
                f"batch {args.batch_size}, {args.steps} steps, {args.precision}, {args.threads} thread(s); "
                f"{args.precision} matmul peak {peak / 1e9:.1f} GFLOP/s",
                ["trainer", "trained tokens", "loop s", "tokens/s", "vs TRL", "GFLOP/s", "of peak"], rows)
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
