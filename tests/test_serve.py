"""The OpenAI-compatible server, driven by the official ``openai`` client on 127.0.0.1, and the terminal chat."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch

from oidkit.models import load_model
from oidkit.serve.ask import ask
from oidkit.serve.chat import chat_loop
from oidkit.serve.generation import SamplingParams, generate_stream

MESSAGES = [{"role": "user", "content": "What is two plus two?"}]


@pytest.fixture(scope="module")
def client(tiny_server):
    return openai.OpenAI(base_url=tiny_server, api_key="unused", max_retries=0, timeout=60)


def hf_greedy(tiny_model, messages, max_new_tokens):
    """Reference: the same prompt through transformers ``generate`` without sampling."""
    model, tokenizer = tiny_model
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return ids.shape[1], tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True), out.shape[1] - ids.shape[1]


def test_models_endpoint_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_greedy_chat_equals_transformers_generate_with_usage(client, tiny_model):
    prompt_tokens, expected, generated = hf_greedy(tiny_model, MESSAGES, 12)
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason in ("length", "stop")
    assert reply.usage.prompt_tokens == prompt_tokens
    assert reply.usage.completion_tokens == generated
    assert reply.usage.total_tokens == prompt_tokens + generated


def test_streaming_chat_yields_the_same_text_and_usage(client, tiny_model):
    _, expected, generated = hf_greedy(tiny_model, MESSAGES, 12)
    chunks = list(client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("length", "stop")
    assert chunks[-1].usage.completion_tokens == generated


def test_seed_makes_sampling_reproducible_and_n_gives_n_choices(client):
    def sample(seed, n=1):
        return client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=16, temperature=1.0,
                                              seed=seed, n=n)

    first, again, other = sample(7), sample(7), sample(8)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    three = sample(7, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert three.choices[0].message.content == first.choices[0].message.content  # same sampler, same first draw
    assert three.usage.completion_tokens >= 3


def test_tiny_top_p_keeps_only_the_most_likely_token(client, tiny_model):
    _, expected, _ = hf_greedy(tiny_model, MESSAGES, 10)
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10, temperature=1.5,
                                           top_p=1e-6, seed=1)
    assert reply.choices[0].message.content == expected


def test_stop_string_cuts_the_answer_and_never_leaks(client, tiny_model):
    _, full, _ = hf_greedy(tiny_model, MESSAGES, 24)
    stop = full[6:8]
    expected = full[: full.find(stop)]
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=24, temperature=0, stop=[stop])
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=24, temperature=0,
                                              stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


def test_text_completions_with_several_prompts(client, tiny_model):
    model, tokenizer = tiny_model
    reply = client.completions.create(model="tiny", prompt=["The quick brown", "你好"], max_tokens=5, temperature=0)
    assert [c.index for c in reply.choices] == [0, 1]
    params = SamplingParams(max_tokens=5, temperature=0)
    ids = tokenizer("你好", add_special_tokens=False)["input_ids"]
    assert reply.choices[1].text == "".join(d.text for d in generate_stream(model, tokenizer, ids, params))
    streamed = client.completions.create(model="tiny", prompt="The quick brown", max_tokens=5, temperature=0,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(client, tiny_server):
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert unknown.value.body["code"] == "model_not_found" and unknown.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 2000}])
    assert too_long.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=100_000)
    assert too_many.value.body["code"] == "context_length_exceeded"
    raw = httpx.post(f"{tiny_server}/chat/completions", content=b'{"model": "tiny", "messages": [', timeout=10,
                     headers={"Content-Type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "json_invalid"
    wrong = httpx.post(f"{tiny_server}/chat/completions",
                       json={"model": "tiny", "messages": MESSAGES, "temperature": "hot"})
    assert wrong.status_code == 400
    assert set(wrong.json()["error"]) == {"message", "type", "param", "code"}
    assert wrong.json()["error"]["param"] == "temperature"
    missing = httpx.post(f"{tiny_server}/completions", json={"model": "tiny"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "prompt"
    assert httpx.get(f"{tiny_server}/nowhere").json()["error"]["code"] == "404"
    assert client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2).choices[0].message


def test_burst_of_concurrent_requests_is_queued_and_all_answered(client):
    def one(i):
        if i % 2:
            chunks = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, seed=i, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) is not None
        reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, seed=i)
        return reply.usage.completion_tokens > 0

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(one, range(16), timeout=120))
    assert answers == [True] * 16


def test_ask_helper_streams_one_answer(tiny_server, tiny_model):
    pieces = []
    answer = ask("What is two plus two?", base_url=tiny_server, max_tokens=12, write=pieces.append, wait=5)
    assert answer == "".join(pieces) == hf_greedy(tiny_model, MESSAGES, 12)[1]


def test_chat_loop_answers_with_the_history_and_streams_it(tiny_model):
    model, tokenizer = tiny_model
    params = SamplingParams(max_tokens=4, temperature=0)
    out = []
    history = chat_loop(model, tokenizer, ["hello", "again"], out.append, params)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    text = tokenizer.apply_chat_template(history[:3], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert history[3]["content"] == "".join(d.text for d in generate_stream(model, tokenizer, ids, params))
    printed = "".join(out)
    assert history[1]["content"] + "\n> " + history[3]["content"] + "\n> " in printed


def test_chat_loop_reset_and_system_commands(tiny_model):
    model, tokenizer = tiny_model
    out = []
    history = chat_loop(model, tokenizer, ["hello", "again", "/reset", "/system Be terse.", "hi", "/quit", "unseen"],
                        out.append, SamplingParams(max_tokens=3, temperature=0))
    assert [m["role"] for m in history] == ["system", "user", "assistant"]
    assert history[0]["content"] == "Be terse." and history[1]["content"] == "hi"
    printed = "".join(out)
    assert "(conversation reset)" in printed and "(system prompt set; conversation reset)" in printed


@pytest.mark.parametrize("quantize", [[], ["--quantize", "int8"]])
def test_chat_command_reads_stdin(tiny_model_path, quantize):
    from typer.testing import CliRunner

    from oidkit.cli import app

    result = CliRunner().invoke(app, ["chat", str(tiny_model_path), "--max-tokens", "2", "--temperature", "0",
                                      *quantize], input="hello\n/system Be terse.\nhi\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("> ") == 4 and "(system prompt set; conversation reset)" in result.output


@pytest.mark.real
def test_smollm2_greedy_stream_equals_transformers_generate(smollm2_gguf):
    real = load_model("smollm2-135m-instruct")
    messages = [{"role": "user", "content": "Name three primary colours."}]
    prompt_tokens, expected, _ = hf_greedy(real, messages, 24)
    model, tokenizer = real
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == prompt_tokens
    params = SamplingParams(max_tokens=24, temperature=0)
    streamed = "".join(d.text for d in generate_stream(model, tokenizer, ids, params))
    assert streamed == expected
