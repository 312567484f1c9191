"""Text helpers shared by the operators: CJK detection, tokens, normalised keys, stable digests."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# CJK ideographs, kana and hangul: scripts written without spaces, so a character is the unit.
CJK_CLASS = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
CJK_RE = re.compile(f"[{CJK_CLASS}]")
# A token is a run of letters/digits outside CJK, or a single CJK character.
TOKEN_RE = re.compile(f"[{CJK_CLASS}]|[^\\W{CJK_CLASS}]+")
_SPACE_RE = re.compile(r"\s+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, each CJK character a token of its own (punctuation is dropped)."""
    return TOKEN_RE.findall(text.lower())


def cjk_ratio(text: str) -> float:
    """Fraction of non-space characters that are CJK."""
    visible = len(text) - sum(map(str.isspace, text))
    return len(CJK_RE.findall(text)) / visible if visible else 0.0


def normalised(text: str) -> str:
    """Case, width and whitespace folded (NFKC, lower, single spaces): what "the same text" means."""
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def digest(text: str) -> str:
    """Short stable hash of a string (the same in every process, unlike ``hash``)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
