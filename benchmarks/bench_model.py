"""Our readable Llama against transformers' LlamaForCausalLM on SmolLM2-135M, same inputs, one run.

Measures forward tokens/s on a sequence of real text, greedy decoding tokens/s with the KV cache (and checks
both produce the same tokens), and our int8 copies (weight-only, dynamic, and dynamic after SmoothQuant on the
packaged calibration text) for speed and perplexity on the same held-out text.
Decoding one token reads every weight matrix once, so the memory bound is (copy bandwidth measured in the same
run) / (bytes of Linear weights): decode tokens/s is also reported as a share of it.

    .venv/bin/python benchmarks/bench_model.py --out demo-out/bench/model.json [--quick]
"""

from __future__ import annotations

import argparse
import math

import torch

from common import copy_bandwidth, median_seconds, print_table, sharegpt_records, write_figures


def real_text_tokens(tokenizer, length: int) -> torch.Tensor:
    """The first ``length`` tokens of real ShareGPT conversations, as a (1, length) batch."""
    text = "\n\n".join(m["content"] for r in sharegpt_records(40) for m in r["messages"])
    return tokenizer(text, return_tensors="pt")["input_ids"][:, :length]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="128-token forward, 16 decoded tokens, 2 repeats")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine a busy core stalls every multi-threaded "
                             "matmul, which swamps the comparison)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seq_len, new_tokens, repeats = (128, 16, 2) if args.quick else (512, 64, 5)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oidkit.models import resolve_model
    from oidkit.models.llama import LlamaModel
    from oidkit.models.quantize import calibration_tokens, linear_weight_bytes, quantize_int8

    folder = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    theirs = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ours = LlamaModel.from_pretrained(folder)
    tokens = real_text_tokens(tokenizer, seq_len)
    prompt = tokens[:, :32]

    def loss_of(model: torch.nn.Module, hf: bool) -> float:
        logits = model(tokens).logits if hf else model(tokens)
        return float(torch.nn.functional.cross_entropy(logits[0, :-1].float(), tokens[0, 1:]))

    with torch.inference_mode():
        ours_out = ours.generate(prompt, new_tokens, eos_token_id=[])
        theirs_out = theirs.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        same_tokens = ours_out.tolist() == theirs_out.tolist()
        max_logit_diff = float((ours(tokens) - theirs(tokens).logits).abs().max())
        int8 = {mode: quantize_int8(ours, mode) for mode in ("weight", "dynamic")}
        int8["dynamic smoothed"] = quantize_int8(ours, "dynamic", calibration_tokens(tokenizer))
        forward = median_seconds({"transformers": lambda: theirs(tokens), "ours": lambda: ours(tokens),
                                  **{mode: lambda m=m: m(tokens) for mode, m in int8.items()}}, repeats)
        decode = median_seconds({
            "transformers": lambda: theirs.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                                    do_sample=False),
            "ours": lambda: ours.generate(prompt, new_tokens, eos_token_id=[]),
            **{mode: lambda m=m: m.generate(prompt, new_tokens, eos_token_id=[]) for mode, m in int8.items()}},
            repeats)
        bandwidth = copy_bandwidth(repeats)
        perplexity = {"float32": math.exp(loss_of(ours, hf=False)),
                      **{f"int8 {mode}": math.exp(loss_of(m, hf=False)) for mode, m in int8.items()}}

    figures = {
        "model": "SmolLM2-135M-Instruct (float32, CPU)", "threads": torch.get_num_threads(), "seq_len": seq_len,
        "new_tokens": new_tokens, "same_greedy_tokens": same_tokens, "max_logit_difference": max_logit_diff,
        "forward_tokens_per_s": {k: seq_len / forward[k] for k in ("transformers", "ours")},
        "decode_tokens_per_s": {k: new_tokens / decode[k] for k in ("transformers", "ours")},
        "forward_ratio_ours_over_transformers": forward["transformers"] / forward["ours"],
        "decode_ratio_ours_over_transformers": decode["transformers"] / decode["ours"],
        "int8_forward_tokens_per_s": {mode: seq_len / forward[mode] for mode in int8},
        "int8_decode_tokens_per_s": {mode: new_tokens / decode[mode] for mode in int8},
        "perplexity_on_real_text": perplexity,
        "copy_bandwidth_gb_per_s": bandwidth / 1e9,
        "weight_bytes_per_token": {"float32": linear_weight_bytes(ours),
                                   **{f"int8 {mode}": linear_weight_bytes(m) for mode, m in int8.items()}},
    }
    figures["decode_bound_tokens_per_s"] = {k: bandwidth / b for k, b in figures["weight_bytes_per_token"].items()}
    decoded = {"float32": figures["decode_tokens_per_s"]["ours"],
               **{f"int8 {mode}": figures["int8_decode_tokens_per_s"][mode] for mode in int8}}
    figures["decode_share_of_bound"] = {k: decoded[k] / figures["decode_bound_tokens_per_s"][k] for k in decoded}
    rows = [
        [f"forward, {seq_len} tokens (tok/s)", f"{figures['forward_tokens_per_s']['transformers']:.0f}",
         f"{figures['forward_tokens_per_s']['ours']:.0f}", f"{figures['forward_ratio_ours_over_transformers']:.2f}x"],
        [f"greedy decode, {new_tokens} tokens (tok/s)", f"{figures['decode_tokens_per_s']['transformers']:.1f}",
         f"{figures['decode_tokens_per_s']['ours']:.1f}", f"{figures['decode_ratio_ours_over_transformers']:.2f}x"],
    ]
    print_table("ours (oidkit.models.llama) vs transformers, SmolLM2-135M fp32", ["", "transformers", "ours", "ratio"],
                rows)
    print(f"same greedy tokens: {same_tokens}; max |logit difference| {max_logit_diff:.2e}")
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (1 thread); decode bound = bandwidth / weight bytes per token")
    int8_rows = []
    for name, run in (("float32", "ours"), *((f"int8 {mode}", mode) for mode in int8)):
        int8_rows.append([name, f"{seq_len / forward[run]:.0f}", f"{new_tokens / decode[run]:.1f}",
                          f"{figures['decode_bound_tokens_per_s'][name]:.0f}",
                          f"{figures['decode_share_of_bound'][name]:.0%}", f"{perplexity[name]:.3f}",
                          f"{perplexity[name] / perplexity['float32'] - 1:+.1%}",
                          f"{forward['ours'] / forward[run]:.2f}x", f"{decode['ours'] / decode[run]:.2f}x"])
    print_table("our model, float32 and int8 copies (oidkit.models.quantize)",
                ["", "forward tok/s", "decode tok/s", "decode bound", "share", "perplexity", "change",
                 "forward vs fp32", "decode vs fp32"], int8_rows)
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
