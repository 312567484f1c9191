"""Script-level text helpers shared by every part: what counts as CJK, the Chinese/Latin split, ROUGE tokens.

One definition, so that curation, reports, synthesis, evaluation and tokenizer statistics agree on which
texts are "Chinese" and how they are tokenised where no model tokenizer is involved.
"""

from __future__ import annotations

import re

# CJK ideographs, kana and hangul syllables: scripts written without spaces, so a character is the unit.
CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
CJK_RE = re.compile(f"[{CJK_CLASS}]")
# rouge-score's tokens (lower-cased [a-z0-9] runs), plus each CJK character, which rouge-score drops.
ROUGE_TOKEN_RE = re.compile(f"[a-z0-9]+|[{CJK_CLASS}]")


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains any CJK character."""
    return CJK_RE.search(text) is not None


def cjk_ratio(text: str) -> float:
    """Fraction of non-space characters that are CJK."""
    visible = len(text) - sum(c.isspace() for c in text)
    return len(CJK_RE.findall(text)) / visible if visible else 0.0


def script_language(text: str) -> str:
    """``zh`` when at least a third of the non-space characters are CJK, else ``en``: a script split, not a
    language identifier (use the curate ``language`` operator for that)."""
    return "zh" if cjk_ratio(text) * 3 >= 1 and text.strip() else "en"


def rouge_tokens(text: str) -> list[str]:
    """Tokens for ROUGE: exactly rouge-score's for text without CJK, one token per CJK character."""
    return ROUGE_TOKEN_RE.findall(text.lower())
