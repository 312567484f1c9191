"""Serving speed: our OpenAI-compatible server against plain ``transformers`` ``generate``, same model and prompts.

Measured, greedy, in one run:
- one client, ``--repeats`` rounds alternating server and ``generate`` on the same two prompts (medians): time
  to first token (TTFT; the peer's is a 1-token ``generate``), decode tokens/s (tokens after the first / time
  after the first), and decode as a share of the memory-bandwidth bound (copy bandwidth measured in the same
  run / bytes of Linear weights one token reads);
- the same for our decode loop called directly (``generate_stream``: the server without HTTP, threads and
  the client, which here run in the model's process and share its GIL);
- where our TTFT goes, in the server's process: chat template, tokenisation, prefill with the first token;
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

from common import copy_bandwidth, median_seconds, print_table, write_figures

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


def loop_one(model, tokenizer, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """(TTFT, seconds after the first token, tokens) of our decode loop called directly: the server without HTTP."""
    from oidkit.serve.generation import SamplingParams, generate_stream

    started = time.perf_counter()
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    first, tokens = None, 0
    for delta in generate_stream(model, tokenizer, ids, SamplingParams(max_tokens=max_tokens, temperature=0)):
        first, tokens = first or time.perf_counter(), delta.completion_tokens
    end = time.perf_counter()
    return first - started, end - first, tokens


def single_client(model, plain, tokenizer, client, max_tokens: int, repeats: int) -> tuple[dict, dict]:
    """One client: server, our loop without HTTP and ``generate`` alternate, prompt by prompt, ``repeats``
    rounds; medians."""
    ours: dict[str, list[float]] = {"ttft_s": [], "decode_tok_s": [], "loop_ttft_s": [], "loop_decode_tok_s": []}
    peer: dict[str, list[float]] = {"ttft_s": [], "decode_tok_s": []}
    for _ in range(repeats):
        for prompt in PROMPTS[:2]:
            ttft, after, tokens = stream_one(client, prompt, max_tokens)
            ours["ttft_s"].append(ttft)
            ours["decode_tok_s"].append((tokens - 1) / max(after, 1e-9))
            ttft, after, tokens = loop_one(model, tokenizer, prompt, max_tokens)
            ours["loop_ttft_s"].append(ttft)
            ours["loop_decode_tok_s"].append((tokens - 1) / max(after, 1e-9))
            first = hf_generate(plain, tokenizer, [prompt], 1)[0]
            seconds, tokens = hf_generate(plain, tokenizer, [prompt], max_tokens)
            peer["ttft_s"].append(first)
            peer["decode_tok_s"].append((tokens - 1) / max(seconds - first, 1e-9))
    return ({k: statistics.median(v) for k, v in ours.items()}, {k: statistics.median(v) for k, v in peer.items()})


def concurrent_clients(client, max_tokens: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda p: stream_one(client, p, max_tokens), PROMPTS))
    wall = time.perf_counter() - started
    return {"concurrent_ttft_s": statistics.mean(t for t, _, _ in together),
            "concurrent_tok_s": sum(n for _, _, n in together) / wall}


def ttft_parts(model, tokenizer, repeats: int) -> dict[str, float]:
    """Seconds of each part of our time to first token, in the server's process, medians: chat template,
    tokenisation, and prefill + first token (``DecodeBatch.add``, what the model worker runs)."""
    from oidkit.serve.generation import Completion, DecodeBatch, SamplingParams, end_token_ids, make_generator

    messages = [{"role": "user", "content": PROMPTS[0]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    end_ids, params = end_token_ids(model, tokenizer), SamplingParams(max_tokens=2, temperature=0)
    return median_seconds({
        "template": lambda: tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
        "tokenise": lambda: tokenizer(text, add_special_tokens=False),
        "prefill + first token": lambda: DecodeBatch(model).add([Completion(tokenizer, ids, params, end_ids,
                                                                            make_generator(0))]),
    }, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model folder or alias")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="16 new tokens per request, 2 rounds")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the one-client comparison (medians)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as bench_model.py: on a shared machine a busy core stalls "
                             "every multi-threaded matmul)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    max_tokens, repeats = (16, 2) if args.quick else (args.max_tokens, args.repeats)

    import openai
    import torch

    from oidkit.models import load_model
    from oidkit.models.quantize import linear_weight_bytes
    from oidkit.serve.generation import load_serving_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # ours: the one-row layout of oid chat and oid serve --max-batch-size 1 (Linear weights transposed); the
    # concurrent-clients figure below runs on it too, where the default oid serve keeps the plain layout
    model, tokenizer = load_serving_model(args.model, one_row=True)
    plain, _ = load_model(args.model)  # the peer: the model as transformers loads it
    hf_generate(plain, tokenizer, PROMPTS[:1], 2)  # warm-up
    url, server, thread = start_server(model, tokenizer)
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
    try:
        stream_one(client, PROMPTS[0], 2)  # warm-up
        ours, peer = single_client(model, plain, tokenizer, client, max_tokens, repeats)
        ours.update(concurrent_clients(client, max_tokens))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    seconds, tokens = hf_generate(plain, tokenizer, PROMPTS, max_tokens)
    peer.update({"concurrent_ttft_s": None, "concurrent_tok_s": tokens / seconds})
    parts = ttft_parts(model, tokenizer, repeats)
    bound = copy_bandwidth(repeats) / linear_weight_bytes(plain)
    for side in (ours, peer):
        side["decode_share_of_bound"] = side["decode_tok_s"] / bound
    ours["loop_decode_share_of_bound"] = ours["loop_decode_tok_s"] / bound
    peer.update({f"loop_{key}": peer[key] for key in ("ttft_s", "decode_tok_s", "decode_share_of_bound")})
    rows = []
    for key, label, better in [("ttft_s", "TTFT, 1 client (s)", "lower"),
                               ("decode_tok_s", "decode tokens/s, 1 client", "higher"),
                               ("decode_share_of_bound", "decode share of the bandwidth bound", "higher"),
                               ("loop_ttft_s", "TTFT, our loop without HTTP (s)", "lower"),
                               ("loop_decode_tok_s", "decode tokens/s, our loop without HTTP", "higher"),
                               ("loop_decode_share_of_bound", "share of the bound, loop without HTTP", "higher"),
                               ("concurrent_ttft_s", "mean TTFT, 4 clients (s)", "lower"),
                               ("concurrent_tok_s", "aggregate tokens/s, 4 clients", "higher")]:
        a, b = ours[key], peer[key]
        ratio = b / a if better == "lower" and a and b else a / b if a and b else None
        rows.append([label, f"{a:.3f}", "-" if b is None else f"{b:.3f}",
                     "-" if ratio is None else f"{ratio:.2f}x"])
    print_table(f"oid serve vs transformers generate ({args.model}, {max_tokens} new tokens, greedy, "
                f"{args.threads} thread(s), medians of {repeats} rounds; ratio > 1 means the server is better)",
                ["measure", "oid serve", "transformers", "ratio"], rows)
    print(f"decode bound {bound:.1f} tokens/s (copy bandwidth / {linear_weight_bytes(plain) / 1e6:.0f} MB of weights)")
    print("our TTFT in the server's process: " + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in parts.items()))
    write_figures(args.out, {"model": args.model, "max_tokens": max_tokens, "threads": args.threads,
                             "repeats": repeats, "decode_bound_tok_s": bound, "ttft_parts_s": parts,
                             "oid_serve": ours, "transformers_generate": peer})

if __name__ == "__main__":
    main()
