"""Text helpers shared by the operators: CJK detection, tokens, normalised keys, rolling n-gram hashes."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

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
    visible = len(text) - sum(c.isspace() for c in text)
    return len(CJK_RE.findall(text)) / visible if visible else 0.0


def normalised(text: str) -> str:
    """Case, width and whitespace folded (NFKC, lower, single spaces): what "the same text" means."""
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def digest(text: str) -> str:
    """Short stable hash of a string (the same in every process, unlike ``hash``)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


_MULTIPLIER = np.uint64(1099511628211)  # the FNV-64 prime: an odd multiplier spreads the bits


def ngram_hashes(token_list: list[str], n: int) -> np.ndarray:
    """64-bit hashes of every ``n``-token window (polynomial rolling hash over stable token hashes).

    Vectorised over the windows so a long conversation costs ``n`` numpy passes, not a tuple per window.
    Token hashes come from Python's ``hash`` (salted per process), so compare hashes made in one process
    only: an index and the texts checked against it are hashed by the same worker.
    """
    if len(token_list) < n:
        return np.empty(0, dtype=np.uint64)
    vocabulary, positions = np.unique(np.array(token_list), return_inverse=True)
    base = np.array([hash(t) for t in vocabulary], dtype=np.int64).view(np.uint64)[positions]
    windows = len(base) - n + 1
    hashes = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            hashes = hashes * _MULTIPLIER + base[j:j + windows]
    return hashes
