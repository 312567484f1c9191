"""oid serve's chat page in headless Chromium: a streamed answer from the tiny model, copy, regenerate, stop."""

from __future__ import annotations

import httpx
import pytest

from conftest import ROOT, serving
from oidkit.serve.app import create_app

pytestmark = pytest.mark.browser

HOSTILE = 'Hi <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2"> `code <b>`'
# Counts how often the content of the answer being streamed changes: more than once means it streamed.
COUNT_UPDATES = """() => { window.__updates = 0; new MutationObserver(() => {
  if (document.querySelector('#messages .turn.streaming')) window.__updates += 1; })
  .observe(document.querySelector('#messages'), {childList: true, subtree: true, characterData: true}); }"""


@pytest.fixture
def chat_page(chromium, tiny_model):
    model, tokenizer = tiny_model
    with serving(create_app(model, tokenizer, "tiny")) as url:
        context = chromium.new_context(viewport={"width": 1280, "height": 760})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(url)
        page.wait_for_selector("#model-name:text('tiny')")
        yield page, url
        context.close()


def settings(page, **values):
    for name, value in values.items():
        page.fill(f"#settings [name={name}]", str(value))


def test_chat_page_streams_an_answer_copies_it_and_regenerates(chat_page, tmp_path):
    page, url = chat_page
    headers = httpx.get(url).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "http" not in page.content().replace(url, "")  # no asset from elsewhere: works offline
    settings(page, system="你是一个简洁的助手。", temperature=1, max_tokens=48, seed=7)
    page.evaluate(COUNT_UPDATES)
    page.fill("#ask-form textarea", "你好！用一句话介绍你自己。")
    page.keyboard.press("Enter")
    page.wait_for_selector("#messages .turn.assistant .copy")  # the buttons come when the stream ends
    assert page.evaluate("window.__updates") > 1
    assert page.locator("#messages .turn.user .content").inner_text() == "你好！用一句话介绍你自己。"

    expected = httpx.post(f"{url}/v1/chat/completions", json={
        "model": "tiny", "temperature": 1, "max_tokens": 48, "seed": 7,
        "messages": [{"role": "system", "content": "你是一个简洁的助手。"},
                     {"role": "user", "content": "你好！用一句话介绍你自己。"}]}).json()["choices"][0]["message"]
    page.click("#messages .turn.assistant .copy")
    assert page.evaluate("navigator.clipboard.readText()") == expected["content"] != ""
    page.screenshot(path=str(tmp_path / "chat.png"))

    settings(page, seed=8)
    page.click("#messages .turn.assistant .regenerate")
    page.wait_for_selector("#messages .turn.assistant .copy")
    assert page.locator("#messages .turn.assistant").count() == 1 and page.locator("#messages .turn.user").count() == 1
    page.click("#messages .turn.assistant .copy")
    assert page.evaluate("navigator.clipboard.readText()") != expected["content"]  # another seed, another answer

    page.click("#new-chat")
    assert page.locator("#messages .turn").count() == 0


def test_hostile_text_shows_literally_and_a_server_error_is_shown(chat_page):
    page, _ = chat_page
    settings(page, max_tokens=4)
    page.fill("#ask-form textarea", HOSTILE)
    page.click("#send")
    page.wait_for_selector("#messages .turn.assistant .copy")
    assert page.locator("#messages .turn.user .content").inner_text() == HOSTILE.replace("`", "")
    assert page.locator("#messages script, #messages img, #messages b").count() == 0
    assert page.evaluate("window.__xss") is None

    settings(page, max_tokens=100000)  # beyond the context: the server's 400 message is shown in the turn
    page.fill("#ask-form textarea", "again")
    page.click("#send")
    page.wait_for_selector("#messages .turn.error")
    assert "maximum context length" in page.locator("#messages .turn.error").inner_text()


@pytest.mark.real
@pytest.mark.slow
def test_chat_page_with_the_real_smollm2_in_english_and_chinese(chromium, smollm2_model_dir):
    """SmolLM2-135M-Instruct answering on the page (the screenshot in docs/serve.md); its template has no
    tools, so a request with tools is a 400 that says so."""
    from oidkit.models import load_model

    model, tokenizer = load_model(smollm2_model_dir)
    with serving(create_app(model, tokenizer, "smollm2-135m-instruct")) as url:
        refused = httpx.post(f"{url}/v1/chat/completions", json={
            "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "tools_not_supported"
        context = chromium.new_context(viewport={"width": 1280, "height": 760})
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        settings(page, system="You are a helpful assistant.", temperature=0, max_tokens=60)
        questions = ["What is the capital of France? Answer in one sentence.", "你好！请用中文回答：1+1等于几？"]
        for n, question in enumerate(questions):
            page.fill("#ask-form textarea", question)
            page.keyboard.press("Enter")
            page.wait_for_selector(f"#messages .turn.assistant >> nth={n} >> .copy")
        answers = page.locator("#messages .turn.assistant .content").all_inner_texts()
        assert "Paris" in answers[0] and all(a.strip() for a in answers)
        page.screenshot(path=str(ROOT / "docs" / "img" / "serve-chat.png"))
        context.close()
