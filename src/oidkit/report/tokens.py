"""Token lengths: a named tokenizer when given, else the whitespace/CJK rule.

The rule without a tokenizer: every CJK character (ideographs, kana, hangul) is one token, and the rest of
the text counts by whitespace-separated words. It needs no model, is the same on every machine, and is
close enough to real tokenizers to compare datasets (English words ~1.3 BPE tokens, a Chinese character
~1-2 tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from oidkit.curate.text import CJK_RE
from oidkit.errors import OidError

WHITESPACE_CJK = "whitespace+cjk"

TokenCounter = Callable[[list[str]], list[int]]


def whitespace_cjk_length(text: str) -> int:
    """Tokens of ``text`` under the whitespace/CJK rule."""
    cjk = len(CJK_RE.findall(text))
    if not cjk:
        return len(text.split())
    return cjk + len(CJK_RE.sub(" ", text).split())


def count_whitespace_cjk(texts: list[str]) -> list[int]:
    return [whitespace_cjk_length(t) for t in texts]


def token_counter(tokenizer: str | None) -> tuple[TokenCounter, str]:
    """A batch token counter and the name to print for it.

    ``tokenizer`` is a model folder or name ``transformers.AutoTokenizer`` can load offline; loaded here,
    lazily, so the report pays for transformers only when asked to.
    """
    if not tokenizer:
        return count_whitespace_cjk, WHITESPACE_CJK
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError) as e:
        raise OidError(f"cannot load tokenizer {tokenizer!r}: {e}\nhint: pass a local model folder that has "
                       "tokenizer files, or leave --tokenizer out to count whitespace words and CJK "
                       "characters") from None

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in loaded(texts, add_special_tokens=False)["input_ids"]]

    return count, Path(tokenizer).name or str(tokenizer)
