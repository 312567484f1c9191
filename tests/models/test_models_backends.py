"""Generation backends: retries, errors, disk cache and token counts, against a scripted server."""

from __future__ import annotations

import re

import pytest

from oidkit.models.backends import BackendError, GenerationRequest, LocalBackend, OpenAIBackend


def ask(text: str) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], {"temperature": 0.7})


def test_answers_come_back_in_order_with_token_counts(scripted):
    server = scripted({f"q{i}": [f"answer number {i}"] for i in range(10)})
    backend = OpenAIBackend(server.url, "m", concurrency=4, backoff=0)
    out = backend.generate([ask(f"q{i}") for i in range(10)])
    assert [g.text for g in out] == [f"answer number {i}" for i in range(10)]
    assert backend.usage.requests == 10 and backend.usage.completion_tokens == 30
    assert backend.usage.prompt_tokens == 10


def test_429_5xx_and_malformed_replies_are_retried(scripted):
    server = scripted({"a": [429, 503, "malformed", "finally"]})
    backend = OpenAIBackend(server.url, "m", backoff=0, max_retries=5)
    assert backend.generate([ask("a")])[0].text == "finally"
    assert server.calls == ["a"] * 4
    assert backend.usage.retries == 3


def test_a_client_error_fails_that_request_at_once_the_rest_go_on_and_it_is_not_cached(scripted, tmp_path):
    server = scripted({"too long": [400], "fine": ["ok"]})
    backend = OpenAIBackend(server.url, "m", backoff=0, cache_dir=tmp_path)
    failed, answered = backend.generate([ask("too long"), ask("fine")])
    assert failed.text == "" and failed.error.startswith("HTTP 400") and "scripted error" in failed.error
    assert answered.text == "ok" and answered.error is None
    assert server.calls.count("too long") == 1 and backend.usage.failures == 1
    server.script["too long"] = ["fits now"]
    again = OpenAIBackend(server.url, "m", backoff=0, cache_dir=tmp_path)
    assert [g.text for g in again.generate([ask("too long"), ask("fine")])] == ["fits now", "ok"]
    assert server.calls.count("fine") == 1 and again.usage.cached == 1  # only the failure is asked again


def test_retries_give_up_after_max_retries(scripted):
    server = scripted({"down": [503]})
    backend = OpenAIBackend(server.url, "m", backoff=0, max_retries=2)
    [generation] = backend.generate([ask("down")])
    assert generation.error.startswith("HTTP 503") and len(server.calls) == 3 and backend.usage.failures == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_not_found_stop_at_once_naming_the_endpoint(scripted, status):
    server = scripted({f"q{i}": [status] for i in range(50)})
    backend = OpenAIBackend(server.url, "m", backoff=0, concurrency=2)
    where = re.escape(f"{server.url}/v1/chat/completions (model m): HTTP {status}")
    with pytest.raises(BackendError, match=where):
        backend.generate([ask(f"q{i}") for i in range(50)])
    assert len(server.calls) <= 2  # only the requests already in flight, out of 50
    with pytest.raises(BackendError, match=where):  # and the backend stays stopped
        backend.generate([ask("q0")])
    assert len(server.calls) <= 2


def test_failures_in_a_row_stop_a_dead_endpoint_and_a_success_resets_the_count(scripted):
    server = scripted({f"bad{i}": [503] for i in range(30)} | {"good": ["ok"]})
    backend = OpenAIBackend(server.url, "m", backoff=0, max_retries=1, concurrency=1, max_failures_in_a_row=3)
    mixed = backend.generate([ask("bad0"), ask("bad1"), ask("good"), ask("bad2"), ask("bad3"), ask("good")])
    assert [g.error is None for g in mixed] == [False, False, True, False, False, True]
    with pytest.raises(BackendError, match="3 requests in a row failed, the last with HTTP 503"):
        backend.generate([ask(f"bad{i}") for i in range(3)])  # the last request of the batch shows it
    assert len(server.calls) == 4 * 2 + 2 + 3 * 2 and backend.usage.failures == 7  # two attempts per failure
    with pytest.raises(BackendError, match="in a row"):
        backend.generate([ask("good")])
    assert len(server.calls) == 16  # nothing more is sent


def test_disk_cache_resumes_without_paying_twice(scripted, tmp_path):
    server = scripted({"x": ["one"], "y": ["two"]})
    first = OpenAIBackend(server.url, "m", cache_dir=tmp_path, backoff=0)
    first.generate([ask("x"), ask("y")])
    again = OpenAIBackend(server.url, "m", cache_dir=tmp_path, backoff=0)
    out = again.generate([ask("x"), ask("y"), ask("x")])
    assert [g.text for g in out] == ["one", "two", "one"] and all(g.cached for g in out)
    assert len(server.calls) == 2 and again.usage.cached == 3
    other_model = OpenAIBackend(server.url, "other", cache_dir=tmp_path, backoff=0)
    other_model.generate([ask("x")])
    assert len(server.calls) == 3  # the cache key includes the model


def test_local_backend_generates_and_caches(tiny_model_path, tmp_path):
    backend = LocalBackend(tiny_model_path, batch_size=2, cache_dir=tmp_path)
    requests = [GenerationRequest([{"role": "user", "content": f"hello {i}"}],
                                  {"temperature": 0, "max_tokens": 5}) for i in range(3)]
    out = backend.generate(requests)
    assert len(out) == 3 and all(0 < g.completion_tokens <= 5 for g in out)
    assert all(isinstance(g.text, str) for g in out)
    again = LocalBackend(tiny_model_path, cache_dir=tmp_path).generate(requests)
    assert [g.text for g in again] == [g.text for g in out] and all(g.cached for g in again)


def test_completion_length_stops_at_the_first_end_token():
    from oidkit.models.backends import completion_length

    assert completion_length([5, 6, 2, 2, 2], {2}) == 3  # pad == eos: padding after the end is not counted
    assert completion_length([5, 6, 7], {2, 0}) == 3
    assert completion_length([2], {2}) == 1


def test_local_backend_keeps_the_end_of_prompts_longer_than_the_context(tiny_model):
    model, tokenizer = tiny_model
    backend = LocalBackend("tiny", batch_size=2, loaded=(model, tokenizer))
    params = {"temperature": 0, "max_tokens": 4}
    long = GenerationRequest([{"role": "user", "content": "word " * 2000 + "end"}], params)
    short = GenerationRequest([{"role": "user", "content": "hello"}], params)
    batched = backend.generate([long, short])  # 2000+ tokens against a 512-position model: no error
    assert 0 < batched[0].prompt_tokens <= 512 - 4
    alone = LocalBackend("tiny", batch_size=1, loaded=(model, tokenizer)).generate([short])
    assert batched[1].text == alone[0].text  # left padding: batching does not change an answer


def test_local_backend_batches_by_length_and_answers_in_request_order(tiny_model):
    model, tokenizer = tiny_model
    params = {"temperature": 0, "max_tokens": 4}
    # long, short, long, short: sorted into (short, short) and (long, long) batches
    requests = [GenerationRequest([{"role": "user", "content": ("word " * n) + f"item {i}"}], params)
                for i, n in enumerate((60, 1, 50, 2))]
    seen: list[int] = []
    backend = LocalBackend("tiny", batch_size=2, loaded=(model, tokenizer))
    original = backend._generate_batch
    backend._generate_batch = lambda batch: seen.append([r.messages[0]["content"].count("word") for r in batch]) \
        or original(batch)
    batched = backend.generate(requests)
    assert seen == [[1, 2], [50, 60]]
    alone = LocalBackend("tiny", batch_size=1, loaded=(model, tokenizer)).generate(requests)
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in alone]
