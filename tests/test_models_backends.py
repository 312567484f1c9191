"""Generation backends: retries, errors, disk cache and token counts, against a scripted server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oidkit.models.backends import BackendError, GenerationRequest, LocalBackend, OpenAIBackend


class ScriptedServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers from a script.

    ``script`` maps the user's text to a list of replies used in turn: an int is an HTTP error status,
    the string "malformed" a 200 with a body that is not a chat completion, any other string the answer.
    """

    def __init__(self, script: dict[str, list]):
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                server.calls.append(prompt)
                replies = server.script[prompt]
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if isinstance(reply, int):
                    self._send(reply, {"error": {"message": "scripted error"}}, {"Retry-After": "0"})
                elif reply == "malformed":
                    self._send(200, {"choices": []})
                else:
                    self._send(200, {
                        "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(reply.split())},
                    })

            def _send(self, status, data, headers=None):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def scripted():
    servers = []

    def start(script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


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


def test_client_errors_fail_at_once_with_the_status(scripted):
    server = scripted({"bad": [400]})
    backend = OpenAIBackend(server.url, "m", backoff=0)
    with pytest.raises(BackendError, match="HTTP 400"):
        backend.generate([ask("bad")])
    assert server.calls == ["bad"] and backend.usage.failures == 1


def test_retries_give_up_after_max_retries(scripted):
    server = scripted({"down": [503]})
    backend = OpenAIBackend(server.url, "m", backoff=0, max_retries=2)
    with pytest.raises(BackendError, match="503"):
        backend.generate([ask("down")])
    assert len(server.calls) == 3


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
