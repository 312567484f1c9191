"""normalise: Unicode form, mojibake repair, whitespace, stray HTML remnants, optional Traditional -> Simplified."""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Literal

from oidkit.curate.base import Mapper, OpConfig, register
from oidkit.text import CJK_RE

# UTF-8 read as Latin-1/cp1252 leaves a lead byte (Â..ô) followed by a continuation-byte lookalike. Only
# text with such a pair goes through ftfy: ftfy on every string would cost ~20 s on ShareGPT alone.
_MOJIBAKE_HINT = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                            "\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")  # zero-width characters left by scrapes
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
# Layout tags and entities left by HTML-to-text conversion; code blocks are left alone (they may be HTML).
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_STRAY_TAGS = re.compile(r"</?(?:div|span|p|hr|font|center)\b[^<>]{0,200}>", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{1,6}|#x[0-9a-fA-F]{1,5});")
_CODE_FENCE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]+`)", re.DOTALL)
_COPY_CODE = re.compile(r"^(\w[\w+#-]*)?Copy code", re.MULTILINE)  # ChatGPT's "Copy code" button text


class NormaliseConfig(OpConfig):
    unicode: Literal["NFC", "NFKC", "none"] = "NFC"
    """Unicode normal form; NFKC also folds full-width forms and ligatures (changes CJK punctuation)."""
    fix_mojibake: bool = True
    """Repair UTF-8 decoded as Latin-1/cp1252 ("cafÃ©" -> "café") with ftfy."""
    whitespace: bool = True
    """Drop zero-width characters and trailing spaces, squeeze 3+ newlines to 2, strip the ends."""
    strip_html: bool = True
    """Remove stray layout tags (<div>, <br>, ...) and decode entities outside code spans and blocks."""
    traditional_to_simplified: bool = False
    """Convert Traditional Chinese to Simplified (OpenCC t2s)."""


@register
class Normalise(Mapper):
    """Clean the text of every turn; records whose text changes count as modified."""

    name = "normalise"
    Config = NormaliseConfig

    def setup(self) -> None:
        self.converter = None
        if self.config.traditional_to_simplified:
            from opencc import OpenCC

            self.converter = OpenCC("t2s")

    def map(self, record: dict) -> tuple[dict, dict[str, int]]:
        counts: dict[str, int] = {}
        messages = []
        for message in record["messages"]:
            content = message.get("content")
            if isinstance(content, str):
                cleaned = self.clean(content, counts)
                if cleaned != content:
                    message = {**message, "content": cleaned}
            messages.append(message)
        if not counts:
            return record, counts
        return {**record, "messages": messages}, counts

    def clean(self, content: str, counts: dict[str, int]) -> str:
        """The cleaned text; ``counts`` gets one tick per kind of fix that changed something."""
        config = self.config

        def step(kind: str, before: str, after: str) -> str:
            if after != before:
                counts[kind] = counts.get(kind, 0) + 1
            return after

        text = content
        if config.fix_mojibake and _MOJIBAKE_HINT.search(text):
            import ftfy

            text = step("mojibake", text, ftfy.fix_encoding(text))
        if config.unicode != "none":
            text = step("unicode", text, unicodedata.normalize(config.unicode, text))
        if config.strip_html and ("<" in text or "&" in text or "Copy code" in text):
            text = step("html", text, _outside_code(text, _strip_html))
        if config.whitespace:
            squeezed = _BLANK_RUNS.sub("\n\n", _TRAILING_SPACE.sub("", _INVISIBLE.sub("", text))).strip()
            text = step("whitespace", text, squeezed)
        if self.converter is not None and CJK_RE.search(text):
            text = step("traditional_to_simplified", text, self.converter.convert(text))
        return text


def _strip_html(prose: str) -> str:
    prose = _COPY_CODE.sub(lambda m: m.group(1) or "", prose)
    prose = _STRAY_TAGS.sub("", _LINE_BREAK.sub("\n", prose))
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), prose)


def _outside_code(text: str, fix) -> str:
    """Apply ``fix`` to the prose between code spans/blocks only."""
    parts = _CODE_FENCE.split(text)
    return "".join(part if i % 2 else fix(part) for i, part in enumerate(parts))
