"""End to end: the review page in a real headless Chromium, driven with the keyboard and mouse like a person."""

from __future__ import annotations

import httpx
import pytest

from conftest import serving
from oidkit.io import read_records, write_jsonl
from oidkit.records import make_reject
from oidkit.review.app import build, create_app
from oidkit.review.export import export_reviewed

pytestmark = pytest.mark.browser

HOSTILE = 'Hi <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2"> <b>not bold</b>'
MARKDOWN = "Here is **bold**, *italic* and `a <tag>`:\n\n```python\nprint('<b>hi</b>')\n```\n\n- one\n- two"


def record(i: int) -> dict:
    return {"id": f"r{i:03d}", "messages": [
        {"role": "user", "content": f"Question number {i} about topic {i % 7}"},
        {"role": "assistant", "content": f"Answer number {i}."}],
        "source": {"file": f"/data/{'alpha' if i % 2 else 'beta'}.json", "format": "sharegpt"},
        "meta": {"lang": "en", "score": i % 5 + 1}}


@pytest.fixture
def served(tmp_path):
    """The app on a loopback port in this process: (base URL, data, rejects, log path)."""
    records = [record(i) for i in range(130)]
    records[3]["messages"][0]["content"] = HOSTILE
    records[4]["messages"][1]["content"] = MARKDOWN
    data, rejects, log_path = tmp_path / "kept.jsonl", tmp_path / "rejects.jsonl", tmp_path / "kept.review.jsonl"
    write_jsonl(data, records)
    write_jsonl(rejects, [make_reject({**record(8), "id": "near8", "messages": [
        {"role": "user", "content": "Question number 8 about topic 1!"},
        {"role": "assistant", "content": "Answer number 8"}]}, stage="curate", operator="near_dedup",
        reason="near_duplicate", value=0.91, duplicate_of="r008")])
    index, log = build(str(data), rejects=str(rejects), log_path=str(log_path))
    app = create_app(index, log, labels=["good", "unsafe", "wrong"], annotator="ana")
    with serving(app) as url:
        yield url, data, rejects, log_path
    log.close()


@pytest.fixture
def page(chromium, served):
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    opened.goto(served[0])
    opened.wait_for_selector("#detail .item")
    yield opened
    context.close()


def test_browse_filter_and_hostile_text_shows_literally(page, served, tmp_path):
    assert page.locator("#rows .row").count() == 50
    assert page.locator("#page-info").inner_text() == "1–50 of 130"
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.wait_for_selector("#rows .row.current[data-key=r002]")
    page.keyboard.press("n")
    page.wait_for_selector("#rows .row.current[data-key=r050]")
    page.keyboard.press("k")  # before the first row of a page: back to the last row of the previous one
    page.wait_for_selector("#rows .row.current[data-key=r049]")

    page.fill("[name=q]", "WINDOW.__xss")  # search is case-insensitive and sees the raw text
    page.press("[name=q]", "Enter")
    page.wait_for_selector("#page-info:text('1–1 of 1')")
    page.wait_for_selector("#detail .key:text-is('r003')")
    user_turn = page.locator("#detail .turn.user .content")
    assert user_turn.inner_text() == HOSTILE
    assert page.locator("#detail script, #detail img, #detail b").count() == 0
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(tmp_path / "hostile.png"))

    page.click("button[type=reset]")
    page.select_option("[name=source]", "alpha.json (sharegpt)")
    page.fill("[name=min_score]", "5")
    page.click("button[type=submit]")
    # odd i with i % 5 == 4: 9, 19, ..., 129. An exact match: "of 13" is also a substring of the unfiltered "of 130".
    page.wait_for_selector("#page-info:text-is('1–13 of 13')")
    assert page.locator("#rows .row").first.get_attribute("data-key") == "r009"

    page.click("button[type=reset]")
    page.wait_for_selector("#page-info:text('of 130')")
    page.locator("#rows .row[data-key=r004]").click()
    content = page.locator("#detail .turn.assistant .content")
    content.locator("pre code").wait_for()
    assert content.locator("pre code").inner_text() == "print('<b>hi</b>')"
    assert content.locator("strong").inner_text() == "bold"
    assert content.locator("em").inner_text() == "italic"
    assert content.locator("p code").inner_text() == "a <tag>"
    assert content.locator("ul li").all_inner_texts() == ["one", "two"]
    page.screenshot(path=str(tmp_path / "browse.png"))


def test_review_with_keys_conflict_invalid_edit_and_export(page, served, tmp_path):
    base, data, rejects, log_path = served
    page.keyboard.press("a")
    page.wait_for_selector("#rows .row[data-key=r000] .badge.accept")
    page.keyboard.press("j")
    page.keyboard.press("r")
    page.fill("input.reason", "answer is wrong")
    page.press("input.reason", "Enter")
    page.wait_for_selector("#rows .row[data-key=r001] .badge.reject")
    page.keyboard.press("3")
    page.wait_for_selector("#rows .row[data-key=r001] .badge.label:text('wrong')")

    page.keyboard.press("j")  # r002: edit, then lose a race against another annotator
    page.keyboard.press("e")
    page.locator("textarea[name=content-1]").fill("My better answer.")
    with httpx.Client(base_url=base, headers={"Origin": base}) as other:  # a script writes with its Origin
        theirs = [{"role": "user", "content": "Question number 2 about topic 2"},
                  {"role": "assistant", "content": "Bo's answer."}]
        assert other.post("/api/edit", json={"key": "r002", "annotator": "bo", "base": 0,
                                             "messages": theirs}).status_code == 200
    page.locator("textarea[name=content-1]").press("Control+Enter")
    page.wait_for_selector("#conflict-dialog[open]")
    assert "Bo's answer." in page.locator("#conflict-theirs").inner_text()
    assert "My better answer." in page.locator("#conflict-yours").inner_text()
    page.screenshot(path=str(tmp_path / "conflict.png"))
    page.click("#conflict-keep-mine")
    page.wait_for_selector("#detail .version:text('edited by ana')")
    assert page.locator("#detail .turn.assistant .content").inner_text() == "My better answer."

    page.keyboard.press("e")  # an empty answer is refused, and nothing is written
    page.locator("textarea[name=content-1]").fill("   ")
    page.click(".editor button[type=submit]")
    page.wait_for_selector("#toast.error:has-text('empty_assistant_turn')")
    page.keyboard.press("Escape")

    page.click("#views button[data-view=reject]")
    page.wait_for_selector("#detail .side-by-side")
    assert "r008" in page.locator("#detail .side-by-side h3").nth(1).inner_text()
    page.keyboard.press("a")  # the human overrules the near-dedup filter
    page.wait_for_selector("#rows .row .badge.accept")
    page.screenshot(path=str(tmp_path / "reject.png"))

    page.click("#progress-button")
    page.wait_for_selector("#progress-dialog[open] table")
    assert "ana" in page.locator("#progress-body").inner_text()

    summary = export_reviewed(data, tmp_path / "reviewed.jsonl", log_path=log_path, rejects=rejects)
    exported = {r["id"]: r for r in read_records(tmp_path / "reviewed.jsonl")}
    assert summary["written"] == 130  # 130 kept - r001 rejected + near8 restored
    assert "r001" not in exported and "near8" in exported
    assert exported["r002"]["messages"][1]["content"] == "My better answer."
    assert exported["r000"]["meta"]["review"]["status"] == "accept"


def test_page_asks_for_the_annotator_when_none_was_given(chromium, tmp_path):
    data = tmp_path / "d.jsonl"
    write_jsonl(data, [record(i) for i in range(3)])
    index, log = build(str(data), log_path=str(tmp_path / "log.jsonl"))
    app = create_app(index, log, labels=[])
    with serving(app) as url:
        context = chromium.new_context()
        try:
            opened = context.new_page()
            opened.goto(f"{url}/")
            opened.wait_for_selector("#annotator-dialog[open]")
            opened.fill("#annotator-dialog input", "carol")
            opened.press("#annotator-dialog input", "Enter")
            opened.wait_for_selector("#rows .row.current")
            opened.keyboard.press("a")
            opened.wait_for_selector("#rows .row .badge.accept")
            assert log.decisions["r000"]["carol"]["decision"] == "accept"
        finally:
            context.close()
            log.close()
