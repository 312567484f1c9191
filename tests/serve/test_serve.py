"""The OpenAI-compatible server, driven by the official ``openai`` client on 127.0.0.1, and the terminal chat."""

from __future__ import annotations

import contextlib
import copy
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch

from conftest import serving
from oidkit.models import load_model
from oidkit.models.quantize import quantize_int8
from oidkit.models.transposed import transpose_linears
from oidkit.serve.app import create_app
from oidkit.serve.ask import ask
from oidkit.serve.chat import chat_loop
from oidkit.serve.generation import (
    Completion,
    DecodeBatch,
    SamplingParams,
    end_token_ids,
    generate_stream,
    load_serving_model,
    make_generator,
)

MESSAGES = [{"role": "user", "content": "What is two plus two?"}]
# Prompts of different lengths (in tokens), so batched rows need padding.
QUESTIONS = ["Hi", "What is two plus two?", "你好，世界！",
             "Write a long story about the quick brown fox and the lazy dog, with every detail you know."]


@pytest.fixture(scope="module")
def client(tiny_server):
    return openai.OpenAI(base_url=tiny_server, api_key="unused", max_retries=0, timeout=60)


def chat_ids(tokenizer, messages):
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def question_ids(tokenizer):
    return [chat_ids(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]


def hf_greedy_ids(model, tokenizer, prompt_ids, max_new_tokens):
    """Reference: new token ids (the end token included) from transformers ``generate`` without sampling."""
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def hf_greedy(tiny_model, messages, max_new_tokens):
    """Prompt tokens, answer text and new tokens of the same prompt through transformers ``generate``."""
    model, tokenizer = tiny_model
    prompt_ids = chat_ids(tokenizer, messages)
    new = hf_greedy_ids(model, tokenizer, prompt_ids, max_new_tokens)
    return len(prompt_ids), tokenizer.decode(new, skip_special_tokens=True), len(new)


@pytest.fixture(scope="module")
def lively_model(tiny_model):
    """The tiny model with weights redrawn large enough that its greedy tokens depend on the context and the
    positions: the default initialisation answers the same token everywhere, which would hide batching bugs."""
    model, tokenizer = tiny_model
    lively = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for weight in lively.parameters():
            if weight.dim() == 2:
                weight.normal_(0, 0.3)
    return lively, tokenizer


@contextlib.contextmanager
def watched(model, delay=0.0):
    """Record the input shape (rows, tokens) of every forward pass of ``model``, slowed by ``delay`` seconds."""
    shapes = []

    def hook(module, args, kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        time.sleep(delay)

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield shapes
    finally:
        handle.remove()


def alone_and_together(model, tokenizer, prompts, params):
    """Each prompt's completion decoded alone, and all of them in one batch: the second prompt first, the
    fourth and first joining together after a step, the third after another; rows leave as they finish."""
    end_ids = end_token_ids(model, tokenizer)

    def completion(i):
        return Completion(tokenizer, prompts[i], params[i], end_ids, make_generator(params[i].seed))

    alone = []
    for i in range(len(prompts)):
        one, batch = completion(i), DecodeBatch(model)
        batch.add([one])
        while batch:
            batch.step()
        alone.append(one)
    together, batch, sizes = [completion(i) for i in range(len(prompts))], DecodeBatch(model), []
    batch.add([together[1]])
    batch.step()
    batch.add([together[3], together[0]])
    batch.step()
    batch.add([together[2]])
    while batch:
        sizes.append(len(batch))
        batch.step()
    assert max(sizes) == 4 and batch.cache is None
    return alone, together


@pytest.mark.parametrize("int8", [None, "weight"])
def test_batch_decodes_each_prompt_as_if_alone(lively_model, int8):
    model, tokenizer = lively_model
    model = quantize_int8(model, int8) if int8 else model
    prompts = question_ids(tokenizer)
    assert len({len(p) for p in prompts}) == len(prompts)
    params = [SamplingParams(max_tokens=24, temperature=0), SamplingParams(max_tokens=9, temperature=0),
              SamplingParams(max_tokens=30, temperature=1.0, top_p=0.9, seed=5),
              SamplingParams(max_tokens=16, temperature=0, stop=["e"])]
    alone, together = alone_and_together(model, tokenizer, prompts, params)
    # alone, greedy answers are transformers' (up to the stop string), and the answers differ from one another
    end_ids = end_token_ids(model, tokenizer)
    for i in (0, 1):
        expected = hf_greedy_ids(model, tokenizer, prompts[i], params[i].max_tokens)
        assert alone[i].tokens == [t for t in expected if t not in end_ids]
    assert len({c.text for c in alone}) == len(alone)
    for one, batched in zip(alone, together, strict=True):
        assert batched.tokens == one.tokens and batched.text == one.text
        assert batched.finish == one.finish and batched.sampled == one.sampled


def test_concurrent_streaming_and_plain_requests_share_forward_passes(lively_model):
    model, tokenizer = lively_model
    requests = [(question, max_tokens, stream) for question in QUESTIONS for max_tokens in (6, 20)
                for stream in (False, True)]

    def alone(question, max_tokens):
        params = SamplingParams(max_tokens=max_tokens, temperature=0)
        prompt_ids = chat_ids(tokenizer, [{"role": "user", "content": question}])
        return "".join(d.text for d in generate_stream(model, tokenizer, prompt_ids, params))

    def ask_server(client, question, max_tokens, stream):
        messages = [{"role": "user", "content": question}]
        reply = client.chat.completions.create(model="lively", messages=messages, max_tokens=max_tokens,
                                               temperature=0, stream=stream)
        if stream:
            return "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
        return reply.choices[0].message.content

    expected = [alone(question, max_tokens) for question, max_tokens, _ in requests]
    with serving(create_app(model, tokenizer, "lively", max_batch_size=4)) as url, watched(model, 0.01) as shapes:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            answers = list(pool.map(lambda r: ask_server(client, *r), requests, timeout=120))
    assert answers == expected
    # decode steps (one token per row) ran over several requests at once, never more than max_batch_size
    assert max(rows for rows, tokens in shapes if tokens == 1) == 4


def test_dynamic_int8_model_is_served_one_completion_at_a_time(lively_model):
    model, tokenizer = lively_model
    dynamic = quantize_int8(model, "dynamic")
    prompts = question_ids(tokenizer)
    greedy = [SamplingParams(max_tokens=24, temperature=0)] * len(prompts)
    # its activations are quantised with one scale per batch, so batched rows change each other's answers
    alone, together = alone_and_together(dynamic, tokenizer, prompts, greedy)
    assert [c.tokens for c in together] != [c.tokens for c in alone]
    assert create_app(dynamic, tokenizer, "dynamic").state.worker.max_batch_size == 1
    assert create_app(quantize_int8(model), tokenizer, "int8").state.worker.max_batch_size == 8


def test_client_disconnect_frees_its_place(tiny_model):
    model, tokenizer = tiny_model
    app = create_app(model, tokenizer, "tiny", max_batch_size=1)
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 400, "temperature": 0}

    def steps_until_freed(shapes, started):
        deadline = time.monotonic() + 10
        while app.state.worker.batch and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not app.state.worker.batch and not app.state.worker.owner
        return len(shapes) - started

    with serving(app) as url, watched(model, 0.01) as shapes:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=30) as reply:
            next(reply.iter_lines())  # the first chunk: the request is decoding
        assert steps_until_freed(shapes, 0) < 100  # 400 steps if it had run to the end
        started = len(shapes)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.5)
        assert steps_until_freed(shapes, started) < 100
        reply = httpx.post(f"{url}/v1/chat/completions", json={**body, "max_tokens": 3}, timeout=30)
        assert reply.json()["usage"]["completion_tokens"] == 3


def test_models_endpoint_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_models_retrieve_answers_the_served_model_and_404_for_others(client):
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.models.retrieve("gpt-9")
    assert unknown.value.body["code"] == "model_not_found"


def openai_error(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def answers_within(url: str, seconds: float) -> bool:
    began = time.perf_counter()
    return httpx.get(f"{url}/v1/models", timeout=seconds).status_code == 200 and \
        time.perf_counter() - began < seconds


def test_body_over_the_limit_gets_413_whole_or_chunked(tiny_model):
    model, tokenizer = tiny_model
    with serving(create_app(model, tokenizer, "tiny", max_body_bytes=64_000)) as url:
        body = {"model": "tiny", "prompt": "hello " * 20_000, "max_tokens": 1}
        whole = httpx.post(f"{url}/v1/completions", json=body, timeout=10)
        assert whole.status_code == 413 and openai_error(whole)["code"] == "request_too_large"

        def chunks():  # no Content-Length: the limit holds on the bytes that arrive
            for _ in range(100):
                yield b"x" * 1000

        chunked = httpx.post(f"{url}/v1/completions", content=chunks(), timeout=10,
                             headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and openai_error(chunked)["code"] == "request_too_large"
        assert answers_within(url, 1)
        small = httpx.post(f"{url}/v1/completions", json={**body, "prompt": "hello"}, timeout=30)
        assert small.status_code == 200


def test_huge_prompt_under_the_body_limit_is_refused_before_tokenizing(tiny_server):
    began = time.perf_counter()
    huge = httpx.post(f"{tiny_server}/completions", json={"model": "tiny", "prompt": "hello world " * 500_000},
                      timeout=60)
    assert huge.status_code == 400 and openai_error(huge)["code"] == "context_length_exceeded"
    assert time.perf_counter() - began < 2  # 6 MB tokenised on the event loop took ~10 s
    chat = httpx.post(f"{tiny_server}/chat/completions", timeout=60,
                      json={"model": "tiny", "messages": [{"role": "user", "content": "你好" * 1_000_000}]})
    assert chat.status_code == 400 and openai_error(chat)["param"] == "messages"


def test_tokenizing_runs_off_the_event_loop(tiny_model):
    model, tokenizer = tiny_model
    slow = copy.deepcopy(tokenizer)

    def slow_call(self, *args, **kwargs):  # a long prompt's tokenization, made long on a tiny tokenizer
        time.sleep(3)
        return type(tokenizer).__call__(self, *args, **kwargs)

    slow.__class__ = type("SlowTokenizer", (type(tokenizer),), {"__call__": slow_call})
    with serving(create_app(model, slow, "tiny")) as url, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{url}/v1/chat/completions", timeout=60,
                              json={"model": "tiny", "messages": MESSAGES, "max_tokens": 2})
        time.sleep(0.5)
        assert answers_within(url, 1)
        assert pending.result().status_code == 200


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
    assert three.choices[0].message.content == first.choices[0].message.content  # choice i samples with seed + i
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


def test_a_seed_beyond_int64_is_a_400_naming_the_field(client, tiny_server):
    huge = httpx.post(f"{tiny_server}/chat/completions",
                      json={"model": "tiny", "messages": MESSAGES, "max_tokens": 2, "seed": 2**64}, timeout=30)
    assert huge.status_code == 400 and huge.json()["error"]["param"] == "seed"
    assert client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2, seed=2**63 - 1).choices


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


def test_transposed_weights_decode_the_tokens_generate_gives(lively_model):
    """What the server runs (``load_serving_model`` stores Linear weights transposed) against transformers
    ``generate`` on the untouched model, prompt by prompt and batched."""
    model, tokenizer = lively_model
    served = transpose_linears(copy.deepcopy(model))
    prompts = question_ids(tokenizer)
    greedy = [SamplingParams(max_tokens=16, temperature=0)] * len(prompts)
    alone, together = alone_and_together(served, tokenizer, prompts, greedy)
    end_ids = end_token_ids(model, tokenizer)
    expected = [[t for t in hf_greedy_ids(model, tokenizer, p, 16) if t not in end_ids] for p in prompts]
    assert [c.tokens for c in alone] == expected
    assert [c.tokens for c in together] == expected
    assert len({tuple(e) for e in expected}) > 1  # the prompts decode differently: the check can fail


@pytest.mark.real
def test_smollm2_greedy_stream_equals_transformers_generate(smollm2_gguf):
    real = load_model("smollm2-135m-instruct")
    messages = [{"role": "user", "content": "Name three primary colours."}]
    prompt_tokens, expected, _ = hf_greedy(real, messages, 24)
    model, tokenizer = load_serving_model("smollm2-135m-instruct", one_row=True)  # what oid chat runs: transposed
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == prompt_tokens
    params = SamplingParams(max_tokens=24, temperature=0)
    streamed = "".join(d.text for d in generate_stream(model, tokenizer, ids, params))
    assert streamed == expected


@pytest.mark.real
def test_smollm2_batched_greedy_equals_alone(smollm2_gguf):
    model, tokenizer = load_model("smollm2-135m-instruct")
    prompts = question_ids(tokenizer)
    greedy = [SamplingParams(max_tokens=24, temperature=0)] * len(prompts)
    alone, together = alone_and_together(model, tokenizer, prompts, greedy)
    end_ids = end_token_ids(model, tokenizer)
    assert alone[3].tokens == [t for t in hf_greedy_ids(model, tokenizer, prompts[3], 24) if t not in end_ids]
    assert [c.tokens for c in together] == [c.tokens for c in alone]


def test_an_application_model_answers_with_its_stored_system_prompt(tiny_model):
    model, tokenizer = tiny_model
    prompt = "Translate the user's Chinese text into English."
    with_system = [{"role": "system", "content": prompt}, *MESSAGES]
    with serving(create_app(model, tokenizer, "app", default_system=prompt)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        bare = client.chat.completions.create(model="app", messages=MESSAGES, max_tokens=2, temperature=0)
        own = client.chat.completions.create(model="app", messages=[{"role": "system", "content": "Be brief."},
                                                                    *MESSAGES], max_tokens=2, temperature=0)
    assert bare.usage.prompt_tokens == len(chat_ids(tokenizer, with_system))  # the stored prompt came first
    assert own.usage.prompt_tokens == len(chat_ids(tokenizer, [{"role": "system", "content": "Be brief."},
                                                               *MESSAGES]))  # a client's own system message wins


def test_run_server_reads_the_stored_prompt_where_the_model_was_loaded_from(tiny_model_path, tmp_path, monkeypatch):
    """The model's name is resolved once (by loading); the application prompt is read from that folder."""
    import shutil

    import uvicorn

    import oidkit.models
    import oidkit.models.loading
    from oidkit.core.app_prompt import app_prompt_file
    from oidkit.serve import app as serve_app

    folder = shutil.copytree(tiny_model_path, tmp_path / "app-model")
    for name, text in app_prompt_file("translate", "Translate into English.").items():
        (folder / name).write_text(text, encoding="utf-8")
    resolved, created = [], []
    real_resolve = oidkit.models.loading.resolve_model

    def counting(name):
        resolved.append(str(name))
        return real_resolve(name)

    monkeypatch.setattr(oidkit.models.loading, "resolve_model", counting)
    monkeypatch.setattr(oidkit.models, "resolve_model", counting)
    monkeypatch.setattr(serve_app, "create_app", lambda *args, **kwargs: created.append(kwargs))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    serve_app.run_server(f"{folder}@int8")
    assert resolved == [str(folder)] and created[0]["default_system"] == "Translate into English."


def test_only_one_row_decoding_stores_weights_transposed(tiny_model_path):
    """The batching server keeps nn.Linear (4-8 rows are slower transposed); oid chat's one row transposes."""
    from oidkit.models.transposed import TransposedLinear

    batched, _ = load_serving_model(str(tiny_model_path))
    one_row, _ = load_serving_model(str(tiny_model_path), one_row=True)
    assert not any(isinstance(m, TransposedLinear) for m in batched.modules())
    assert any(isinstance(m, TransposedLinear) for m in one_row.modules())


def test_a_broken_application_prompt_file_is_one_clear_error(tmp_path):
    from oidkit.core.app_prompt import APP_PROMPT_FILE, read_app_prompt
    from oidkit.errors import InputError

    assert read_app_prompt(tmp_path) is None
    for broken in ('{"system_prompt": "Translate', '{"app": "translate"}', '{"system_prompt": 3}', "[]"):
        (tmp_path / APP_PROMPT_FILE).write_text(broken, encoding="utf-8")
        with pytest.raises(InputError, match=f"{APP_PROMPT_FILE}: not an application prompt file"):
            read_app_prompt(tmp_path)
