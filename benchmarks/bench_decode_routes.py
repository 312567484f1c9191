"""Decoding routes not shipped, measured against the memory-bandwidth bound: is 60% of it reachable?

SmolLM2-135M float32 with the one-row layout of ``oid chat`` (Linear weights transposed), transformers'
``StaticCache``, batch 1, greedy. Each route decodes ``--max-tokens`` after one prefill, ``--repeats`` times
(median): the step eager, and the step under ``torch.compile`` (inductor; its first run compiles and is timed
apart). The bound is the fastest copy bandwidth at the same thread count / bytes of Linear weights one token
reads. Not part of ``make bench``: compiling takes about a minute. Findings: docs/performance.md, Decoding.

    .venv/bin/python benchmarks/bench_decode_routes.py --threads 1 --out bench-out/decode-routes-1.json
    .venv/bin/python benchmarks/bench_decode_routes.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import copy_bandwidth, print_table, write_figures

PROMPT = "Explain why the sky is blue in three sentences."


def decode(model, prompt_ids, step, new_tokens: int) -> tuple[float, list[int]]:
    """Tokens/s of ``new_tokens - 1`` greedy steps after a prefill, and the tokens."""
    import torch
    from transformers import StaticCache

    length = prompt_ids.shape[1]
    cache = StaticCache(config=model.config, max_cache_len=length + new_tokens + 8)
    with torch.no_grad():
        logits = model(input_ids=prompt_ids, past_key_values=cache, cache_position=torch.arange(length),
                       use_cache=True, logits_to_keep=1).logits
        token = logits[:, -1].argmax(-1, keepdim=True)
        tokens = [int(token)]
        started = time.perf_counter()
        for i in range(new_tokens - 1):
            token = step(token, cache, torch.tensor([length + i]))[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(token))
        return (new_tokens - 1) / (time.perf_counter() - started), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    import torch

    from oidkit.models.quantize import linear_weight_bytes
    from oidkit.serve.generation import load_serving_model

    torch.set_num_threads(args.threads)
    model, tokenizer = load_serving_model(args.model, one_row=True)
    prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)["input_ids"]
    weight_bytes = linear_weight_bytes(model)

    def eager(token, cache, position):
        return model(input_ids=token, past_key_values=cache, cache_position=position, use_cache=True).logits

    compiled = torch.compile(eager, dynamic=False)
    started = time.perf_counter()
    decode(model, prompt_ids, compiled, args.max_tokens)
    compile_seconds = time.perf_counter() - started
    figures: dict = {"threads": args.threads, "max_tokens": args.max_tokens, "compile_seconds": compile_seconds}
    tokens = {}
    for name, step in (("eager", eager), ("compiled", compiled)):
        runs = [decode(model, prompt_ids, step, args.max_tokens) for _ in range(args.repeats)]
        figures[name] = statistics.median(rate for rate, _ in runs)
        tokens[name] = runs[-1][1]
    bandwidth = copy_bandwidth(args.repeats)
    bound = bandwidth / weight_bytes
    figures.update(copy_gb_s=bandwidth / 1e9, bound_tokens_s=bound, same_tokens=tokens["eager"] == tokens["compiled"])
    print_table(f"decode routes, {args.threads} thread(s), bound {bound:.1f} tokens/s ({bandwidth / 1e9:.1f} GB/s)",
                ["step", "tokens/s", "share of the bound"],
                [[name, f"{figures[name]:.1f}", f"{figures[name] / bound:.0%}"] for name in ("eager", "compiled")])
    print(f"compile and first run {compile_seconds:.0f} s; same greedy tokens: {figures['same_tokens']}")
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
