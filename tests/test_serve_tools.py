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


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory):
    """The tiny model with the ChatML-tools template, fine-tuned (oid train) on glaive-style tool-call
    conversations until it answers a weather question with the call: training renders tool calls through the
    template, and the model learned that text."""
    import json

    from oidkit.core.chat import CHATML_TOOLS_TEMPLATE
    from oidkit.models.tiny import build_tiny_model
    from oidkit.train.config import load_train_config
    from oidkit.train.run import run_training

    root = tmp_path_factory.mktemp("tools")
    data = root / "glaive.json"
    data.write_text(json.dumps([{"conversations": [
        {"from": "human", "value": "What's the weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": '{"temp_c": 21}'},
        {"from": "gpt", "value": "It is 21 C."}], "tools": json.dumps([WEATHER])}] * 8))
    base = build_tiny_model(root / "base", chat_template=CHATML_TOOLS_TEMPLATE)
    run_training(load_train_config(None, [
        f"model.name={base}", f"data.train={data}", "method=full", "train.max_steps=100", "optim.lr=1e-2",
        "optim.warmup_steps=0", "train.batch_size=4", "data.packing=false", "data.max_seq_len=512",
        f"train.output_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", "train.threads=1"]))
    from oidkit.models import load_model

    return load_model(root / "run" / "last")


@pytest.mark.slow
def test_a_model_trained_on_tool_calls_emits_one_the_parser_reads(tool_model):
    from oidkit.core.tool_calls import parse_tool_calls

    model, tokenizer = tool_model
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What's the weather in Paris?"}],
                                           tools=[WEATHER], add_generation_prompt=True, tokenize=False)
    assert "get_weather" in prompt  # the served template renders the tool definitions
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    text = "".join(d.text for d in generate_stream(model, tokenizer, ids, SamplingParams(max_tokens=120,
                                                                                         temperature=0)))
    content, calls = parse_tool_calls(text)
    assert content == "" and [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("get_weather", '{"city": "Paris"}')]
