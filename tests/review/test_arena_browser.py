"""The arena page in headless Chromium: a blind vote, hostile answers shown as text, a vote kept across kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from conftest import ROOT, free_port, readable_lines, serving
from oidkit.io import write_jsonl
from oidkit.models.backends import LocalBackend, OpenAIBackend
from oidkit.review.arena import Arena, create_arena_app, load_prompts
from oidkit.review.log import ReviewLog

pytestmark = pytest.mark.browser

HOSTILE = ('Here is **bold** and `a <tag>`:\n\n```python\nprint("你好")\n```\n\n'
           'Hi <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2">')
SCREENSHOTS = ROOT / "docs" / "img"


def write_prompts(path, n: int = 3):
    write_jsonl(path, [{"id": f"p{i}", "messages": [{"role": "user", "content": f"Question {i}: 用一句话介绍你自己。"},
                                                    {"role": "assistant", "content": "ref"}]} for i in range(n)])
    return path


def votes(path) -> list[dict]:
    return [line for line in readable_lines(path) if line["action"] == "vote"]


def test_blind_vote_reveals_names_only_after_and_hostile_answers_do_not_run(chromium, tiny_model, tiny_model_path,
                                                                           scripted, tmp_path):
    prompts = load_prompts(write_prompts(tmp_path / "held_out.jsonl"))
    endpoint = scripted({p.messages[-1]["content"]: [HOSTILE] for p in prompts})
    backends = {"tiny-base": LocalBackend(tiny_model_path, loaded=tiny_model),
                "scripted-tuned": OpenAIBackend(endpoint.url, "scripted-tuned", max_retries=0)}
    log = ReviewLog(tmp_path / "held_out.arena.jsonl")
    arena = Arena(backends, prompts, log, params={"max_tokens": 12})
    context = chromium.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        with serving(create_arena_app(arena, annotator="ana")) as url:
            page.goto(url)
            page.wait_for_selector("#prompt .turn.user")
            assert "Question 0" in page.locator("#prompt").inner_text()
            text = page.locator("body").inner_text()
            assert "tiny-base" not in text and "scripted-tuned" not in text  # no name before the vote
            hostile_side = "a" if "print" in page.locator("#answer-a .body").inner_text() else "b"
            answer = page.locator(f"#answer-{hostile_side} .body")
            assert "<script>window.__xss = 1</script>" in answer.inner_text()  # shown as text
            assert answer.locator("strong").inner_text() == "bold" and "你好" in answer.locator("pre").inner_text()
            assert page.locator("#answers script, #answers img").count() == 0
            assert page.evaluate("window.__xss") is None

            page.fill("#note", "B explains better")
            page.keyboard.press("Escape")
            page.click("#vote-bar button[data-choice=B]")
            page.wait_for_selector("#answer-b .model-name:not(:empty)")
            shown = [page.locator(f"#answer-{side} .model-name").inner_text() for side in "ab"]
            assert sorted(shown) == ["scripted-tuned", "tiny-base"]
            assert shown[0 if hostile_side == "a" else 1] == "scripted-tuned"
            page.screenshot(path=str(SCREENSHOTS / "arena.png"))
            (vote,) = votes(log.path)
            assert vote["annotator"] == "ana" and vote["winner"] == shown[1] and vote["note"] == "B explains better"

            page.keyboard.press("n")
            page.wait_for_selector("#prompt :text('Question 1')")
            assert page.locator("#progress-info").inner_text() == "prompt 2 of 3 · your votes 1"
            assert page.locator(".model-name:not(:empty)").count() == 0
    finally:
        context.close()
        log.close()


def start_arena(model_a, model_b, prompts, log, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "oidkit.cli", "arena", str(model_a), str(model_b), "--prompts",
                                str(prompts), "--log", str(log), "--port", str(port), "--annotator", "ana",
                                "--max-tokens", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"arena exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/meta", timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("arena did not start within 120 s")


@pytest.mark.slow
def test_a_vote_survives_kill_9_of_the_arena_server(chromium, tiny_model_path, tmp_path):
    from oidkit.models.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=1)
    prompts, log = write_prompts(tmp_path / "held_out.jsonl"), tmp_path / "held_out.arena.jsonl"
    port = free_port()
    process = start_arena(tiny_model_path, other, prompts, log, port)
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#prompt :text('Question 0')")
        page.click("#vote-bar button[data-choice=tie]")
        page.wait_for_selector("#answer-a .model-name:not(:empty)")
        os.kill(process.pid, signal.SIGKILL)  # right after the acknowledged vote
        process.wait(timeout=10)
        (vote,) = votes(log)
        assert vote["choice"] == "tie" and vote["key"] == "held_out:p0" and vote["annotator"] == "ana"

        process = start_arena(tiny_model_path, other, prompts, log, port)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#prompt :text('Question 1')")  # the voted prompt is not asked again
        assert page.locator("#progress-info").inner_text() == "prompt 2 of 3 · your votes 1"
    finally:
        context.close()
        process.kill()
        process.wait(timeout=10)
