"""The attention page works in a real browser, offline: selectors filled, map drawn, no script error, no request."""

from __future__ import annotations

import pytest

from oidkit.viz.attention import write_attention

pytestmark = pytest.mark.browser

def test_attention_page_draws_each_head_offline(chromium, tiny_model_path, tmp_path):
    write_attention(str(tiny_model_path), "one two three four five", tmp_path)
    errors, requests = [], []
    page = chromium.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((tmp_path / "attention.html").as_uri())
    assert page.locator("#layer option").count() == 2 and page.locator("#head option").count() == 4

    def map_pixels() -> list:  # the colour of the first query row's cells
        return page.evaluate("""() => { const c = document.getElementById('map').getContext('2d');
                                  return Array.from(c.getImageData(130, 130, 40, 4).data); }""")

    first = map_pixels()
    page.select_option("#layer", "1")
    page.select_option("#head", "3")
    assert any(v != 255 for v in first)  # something blue was drawn
    page.mouse.move(*_cell_centre(page, 0, 0))
    assert "query 0" in page.inner_text("#info")
    page.close()
    assert errors == []
    assert all(url.startswith("file://") for url in requests)


def _cell_centre(page, query: int, key: int) -> tuple[float, float]:
    box = page.locator("#map").bounding_box()
    cell = page.evaluate("""() => { const n = JSON.parse(document.getElementById('data').textContent).tokens.length;
                                   return Math.max(6, Math.min(24, Math.floor(640 / n))); }""")
    return box["x"] + 130 + (key + 0.5) * cell, box["y"] + 130 + (query + 0.5) * cell
