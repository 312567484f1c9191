"""The report page in headless Chromium (no console errors, no network, images decode) and on real ShareGPT."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from oidkit.io import read_records, write_jsonl
from oidkit.records import make_record, make_reject
from oidkit.report.build import build_report


def crafted_report(folder: Path) -> Path:
    """A report over English, Chinese and hostile-looking records, with rejects; returns the page path."""
    english = ["Write a poem about the sea and the wind over the harbour.",
               "Explain the theory of relativity to a ten year old child.",
               'Summarize <script src="https://cdn.example.com/x.js"></script> this page: https://example.com']
    records = [make_record([{"role": "user", "content": f"{english[i % 3]} ({i})"},
                            {"role": "assistant", "content": "word " * (5 * i + 1)}],
                           source={"file": "en.jsonl", "format": "alpaca", "index": i}) for i in range(30)]
    records += [make_record([{"role": "user", "content": f"请写一首关于秋天的诗，第{i}首。"},
                             {"role": "assistant", "content": "秋风" * (i + 1)}],
                            source={"file": "zh.json", "format": "sharegpt", "index": i}) for i in range(10)]
    write_jsonl(folder / "data.jsonl", records)
    write_jsonl(folder / "rejects.jsonl", [make_reject(records[0], stage="curate", operator="heuristics",
                                                       reason="too_short", value=3)])
    build_report(folder / "data.jsonl", folder / "out", rejects=folder / "rejects.jsonl")
    return folder / "out" / "report.html"


@pytest.mark.browser
def test_page_renders_in_chromium_without_errors_or_network(chromium, tmp_path):
    page_path = crafted_report(tmp_path)
    errors, requests = [], []
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    decoded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    title = page.title()
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()
    assert errors == []
    assert [url for url in requests if not url.startswith(("data:", "file:"))] == []
    assert decoded and all(decoded)
    assert title == "Dataset report: data.jsonl"
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.real
def test_report_on_real_sharegpt(sharegpt_file, tmp_path):
    records = list(islice(read_records(sharegpt_file, salvage=True, on_reject=lambda reject: None), 2000))
    write_jsonl(tmp_path / "sharegpt.jsonl", records)
    stats = build_report(tmp_path / "sharegpt.jsonl", tmp_path / "out")
    assert stats["overview"]["records"] == 2000
    assert stats["overview"]["turns"] == sum(m["role"] != "system" for r in records for m in r["messages"])
    assert stats["languages"][0]["lang"] == "en" and stats["languages"][0]["share"] > 0.8
    assert stats["instructions"]["en"]["top_verbs"][0]["count"] > 20
    assert (tmp_path / "out" / "report.html").stat().st_size > 100_000
