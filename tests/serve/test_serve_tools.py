"""oid serve: tool calls through the chat template and back, and token log-probabilities."""

from __future__ import annotations

import json

import openai
import pytest
import torch

from conftest import serving
from oidkit.serve.app import create_app
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
    base = build_tiny_model(root / "base", chat_template=CHATML_TOOLS_TEMPLATE, max_position_embeddings=1024)
    run_training(load_train_config(None, [
        f"model.name={base}", f"data.train={data}", "method=full", "train.max_steps=100", "optim.lr=1e-2",
        "optim.warmup_steps=0", "train.batch_size=4", "data.packing=false", "data.max_seq_len=1024",
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


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)


QUESTION = [{"role": "user", "content": "What's the weather in Paris?"}]


@pytest.mark.slow
def test_openai_client_tool_call_round_trip_with_a_tools_template(tool_model):
    model, tokenizer = tool_model
    with serving(create_app(model, tokenizer, "tool-tiny")) as url:
        client = client_for(f"{url}/v1")
        first = client.chat.completions.create(model="tool-tiny", messages=QUESTION, tools=[WEATHER],
                                               temperature=0, max_tokens=120)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls
        assert call.type == "function" and call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id.startswith("call_")

        # the call and its result go back in: rendered through the template, the model answers from them
        follow_up = [*QUESTION, choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}]
        second = client.chat.completions.create(model="tool-tiny", messages=follow_up, tools=[WEATHER],
                                                temperature=0, max_tokens=40)
        assert second.choices[0].message.content == "It is 21 C." and not second.choices[0].message.tool_calls

        stream = client.chat.completions.create(model="tool-tiny", messages=QUESTION, tools=[WEATHER],
                                                temperature=0, max_tokens=120, stream=True)
        chunks = list(stream)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        streamed = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
        assert content == "" and [(t.index, t.function.name, t.function.arguments) for t in streamed] == [
            (0, "get_weather", '{"city": "Paris"}')]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"

        plain = client.chat.completions.create(model="tool-tiny", messages=QUESTION, tools=[WEATHER],
                                               tool_choice="none", temperature=0, max_tokens=30)
        assert plain.choices[0].message.tool_calls is None  # nothing rendered, nothing parsed


def test_tools_with_a_template_that_cannot_render_them_are_a_clear_400(tiny_server):
    client = client_for(tiny_server)
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    requests = [
        {"messages": QUESTION, "tools": [WEATHER]},
        {"messages": [*QUESTION, {"role": "assistant", "content": None, "tool_calls": [call]}]},
        {"messages": [*QUESTION, {"role": "assistant", "content": "", "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "21"}]},
    ]
    for request in requests:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="tiny", max_tokens=4, **request)
        assert refused.value.status_code == 400
        assert "does not support tools" in refused.value.message and refused.value.code == "tools_not_supported"
    with pytest.raises(openai.BadRequestError, match="cannot be enforced"):
        client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=4, tool_choice="required")
    assert client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=2).choices  # still serving


def test_openai_client_logprobs_whole_and_streamed(tiny_server):
    client = client_for(tiny_server)
    whole = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=5, temperature=0,
                                           logprobs=True, top_logprobs=2)
    entries = whole.choices[0].logprobs.content
    assert len(entries) == whole.usage.completion_tokens - (whole.choices[0].finish_reason == "stop")
    assert "".join(e.token for e in entries) == whole.choices[0].message.content
    assert all(len(e.top_logprobs) == 2 and e.top_logprobs[0].logprob == pytest.approx(e.logprob) and e.logprob <= 0
               for e in entries)  # greedy: the chosen token is the most likely one
    streamed = [e for chunk in client.chat.completions.create(
        model="tiny", messages=QUESTION, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2, stream=True)
        if chunk.choices and chunk.choices[0].logprobs for e in chunk.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in entries]
    assert client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=2).choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError, match="not supported on /v1/completions"):
        client.completions.create(model="tiny", prompt="Hi", max_tokens=2, logprobs=1)
