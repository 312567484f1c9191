"""Token lengths: a named tokenizer when given, else the whitespace/CJK rule.

The rule without a tokenizer: every CJK character (ideographs, kana, hangul) is one token, and the rest of
the text counts by whitespace-separated words. It needs no model, is the same on every machine, and is
close enough to real tokenizers to compare datasets (English words ~1.3 BPE tokens, a Chinese character
~1-2 tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from oidkit.errors import OidError
from oidkit.text import CJK_RE

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

    ``tokenizer`` is a model folder or a name ``transformers.AutoTokenizer`` can load offline. A folder with a
    ``tokenizer.json`` is read by ``tokenizers`` alone (importing transformers costs seconds); anything else
    goes through ``AutoTokenizer``. Both load here, lazily, so the report pays only when asked.
    """
    if not tokenizer:
        return count_whitespace_cjk, WHITESPACE_CJK
    name = Path(tokenizer).name or str(tokenizer)
    tokenizer_file = Path(tokenizer) / "tokenizer.json"
    try:
        if tokenizer_file.is_file():
            from tokenizers import Tokenizer

            backend = Tokenizer.from_file(str(tokenizer_file))
        else:
            from transformers import AutoTokenizer

            backend = AutoTokenizer.from_pretrained(tokenizer).backend_tokenizer
    except Exception as e:  # library errors only (tokenizers raises a plain Exception on a bad file)
        raise OidError(f"cannot load a fast tokenizer from {tokenizer!r}: {e}\nhint: pass a local model folder "
                       "with tokenizer files, or leave --tokenizer out to count whitespace words and CJK "
                       "characters") from None

    def count(texts: list[str]) -> list[int]:
        return [len(encoding.ids) for encoding in backend.encode_batch(texts, add_special_tokens=False)]

    return count, name
