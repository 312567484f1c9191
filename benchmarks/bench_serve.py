"""Serving speed: our OpenAI-compatible server against plain ``transformers`` ``generate``, same model and prompts.

Measured, greedy, in one run:
- one client: time to first token (TTFT) and decode tokens/s (tokens after the first / time after the first);
- four concurrent clients: mean TTFT (queueing included) and aggregate tokens/s. The peer for four clients
  is one batched ``generate`` call over the four prompts, the best plain ``transformers`` does with them.

    .venv/bin/python benchmarks/bench_serve.py --out bench-out/serve.json            # SmolLM2-135M
    .venv/bin/python benchmarks/bench_serve.py --quick --model path/to/model
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from common import print_table, write_figures

PROMPTS = [
    "Explain in two sentences why the sky is blue.",
    "Write a short poem about autumn leaves.",
    "List three tips for writing clear emails.",
    "What is the difference between a list and a tuple in Python?",
]


def hf_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[float, int]:
    """Seconds and new tokens of one batched greedy ``generate`` over chat-formatted prompts."""
    import torch

    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    new = output[:, inputs["input_ids"].shape[1]:]
    return seconds, int((new != tokenizer.pad_token_id).sum())


def baseline(model, tokenizer, max_tokens: int) -> dict:
    """transformers: TTFT = a 1-token generate; decode rate from the full generate minus that first token."""
    first = statistics.mean(hf_generate(model, tokenizer, [p], 1)[0] for p in PROMPTS[:2])
    single = [hf_generate(model, tokenizer, [p], max_tokens) for p in PROMPTS[:2]]
    decode = statistics.mean((n - 1) / max(s - first, 1e-9) for s, n in single)
    seconds, tokens = hf_generate(model, tokenizer, PROMPTS, max_tokens)
    return {"ttft_s": first, "decode_tok_s": decode, "concurrent_ttft_s": None,
            "concurrent_tok_s": tokens / seconds}


def start_server(model, tokenizer) -> tuple[str, object, threading.Thread]:
    import uvicorn

    from oidkit.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model, tokenizer, "bench"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1", server, thread


def stream_one(client, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """(TTFT, seconds after the first token, completion tokens) of one streamed chat request."""
    started = time.perf_counter()
    first = None
    tokens = 0
    for chunk in client.chat.completions.create(model="bench", messages=[{"role": "user", "content": prompt}],
                                                max_tokens=max_tokens, temperature=0, stream=True,
                                                stream_options={"include_usage": True}):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    first = first or end
    return first - started, end - first, tokens


def served(model, tokenizer, max_tokens: int) -> dict:
    import openai

    url, server, thread = start_server(model, tokenizer)
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
    try:
        single = [stream_one(client, p, max_tokens) for p in PROMPTS[:2]]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            together = list(pool.map(lambda p: stream_one(client, p, max_tokens), PROMPTS))
        wall = time.perf_counter() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return {"ttft_s": statistics.mean(t for t, _, _ in single),
            "decode_tok_s": statistics.mean((n - 1) / max(d, 1e-9) for _, d, n in single),
            "concurrent_ttft_s": statistics.mean(t for t, _, _ in together),
            "concurrent_tok_s": sum(n for _, _, n in together) / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model folder or alias")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="16 new tokens per request")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    max_tokens = 16 if args.quick else args.max_tokens

    import torch

    from oidkit.serve.generation import load_serving_model

    torch.manual_seed(0)
    model, tokenizer = load_serving_model(args.model)
    hf_generate(model, tokenizer, PROMPTS[:1], 2)  # warm-up
    ours, peer = served(model, tokenizer, max_tokens), baseline(model, tokenizer, max_tokens)
    rows = []
    for key, label, better in [("ttft_s", "TTFT, 1 client (s)", "lower"),
                               ("decode_tok_s", "decode tokens/s, 1 client", "higher"),
                               ("concurrent_ttft_s", "mean TTFT, 4 clients (s)", "lower"),
                               ("concurrent_tok_s", "aggregate tokens/s, 4 clients", "higher")]:
        a, b = ours[key], peer[key]
        ratio = b / a if better == "lower" and a and b else a / b if a and b else None
        rows.append([label, f"{a:.3f}", "-" if b is None else f"{b:.3f}",
                     "-" if ratio is None else f"{ratio:.2f}x"])
    print_table(f"oid serve vs transformers generate ({args.model}, {max_tokens} new tokens, greedy; "
                "ratio > 1 means the server is better)", ["measure", "oid serve", "transformers", "ratio"], rows)
    write_figures(args.out, {"model": args.model, "max_tokens": max_tokens, "oid_serve": ours,
                             "transformers_generate": peer})


if __name__ == "__main__":
    main()
