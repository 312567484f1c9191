"""oid serve: tool calls through the chat template and back, and token log-probabilities."""

from __future__ import annotations

import pytest
import torch

from oidkit.serve.generation import SamplingParams, generate_stream


def test_logprobs_are_the_model_log_softmax_at_each_generated_token(tiny_model):
    model, tokenizer = tiny_model
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hello 你好"}], add_generation_prompt=True,
                                           tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    params = SamplingParams(max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    deltas = list(generate_stream(model, tokenizer, prompt_ids, params))
    entries = [entry for delta in deltas for entry in delta.logprobs]
    assert len(entries) == deltas[-1].completion_tokens - (deltas[-1].finish_reason == "stop")

    with torch.no_grad():  # the same tokens scored in one forward pass over prompt + answer
        ids = list(prompt_ids)
        for entry in entries:
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            token = int(torch.argmax(logprobs))  # greedy
            assert entry["logprob"] == pytest.approx(float(logprobs[token]), abs=1e-4)
            assert entry["token"] == tokenizer.decode([token]) and entry["bytes"] == list(entry["token"].encode())
            top = entry["top_logprobs"]
            assert len(top) == 3 and top[0]["token"] == entry["token"]
            assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
            ids.append(token)
    assert all(delta.logprobs is None for delta in generate_stream(model, tokenizer, prompt_ids,
                                                                   SamplingParams(max_tokens=3, temperature=0)))
