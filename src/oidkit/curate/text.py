"""Text helpers shared by the operators: CJK detection, tokens, normalised keys, stable digests."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from oidkit.text import CJK_CLASS

# A token is a run of letters/digits outside CJK, or a single CJK character.
TOKEN_RE = re.compile(f"[{CJK_CLASS}]|[^\\W{CJK_CLASS}]+")
_SPACE_RE = re.compile(r"\s+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, each CJK character a token of its own (punctuation is dropped)."""
    return TOKEN_RE.findall(text.lower())


def normalised(text: str) -> str:
    """Case, width and whitespace folded (NFKC, lower, single spaces): what "the same text" means."""
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def digest(text: str) -> str:
    """Short stable hash of a string (the same in every process, unlike ``hash``)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
