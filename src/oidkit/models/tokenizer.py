"""Train a byte-level BPE tokenizer on a corpus, and compare tokenizers on the same text.

Byte-level BPE (GPT-2, Llama 3, SmolLM2): text is first turned into bytes, so every string is encodable
with no unknown token; merges of frequent byte pairs then build the vocabulary. The trained tokenizer
carries the ChatML special tokens and chat template of ``oidkit.models.tiny`` so it can be fine-tuned and
served like SmolLM2.

A corpus is any mix of plain text files (``.txt``, ``.md``: one text per blank-line separated paragraph)
and record files ``oidkit.io.read_records`` reads (every message of a record joined into one text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from oidkit.atomic import atomic_folder
from oidkit.errors import InputError
from oidkit.io.outputs import refuse_overwriting_inputs
from oidkit.text import script_language

TEXT_SUFFIXES = {".txt", ".md", ".text"}


def corpus_texts(paths: list[str | Path], *, limit: int | None = None) -> Iterator[str]:
    """Texts of a corpus: paragraphs of text files, one text per record of record files (truncated JSON salvaged)."""
    from oidkit.io import read_records

    def texts() -> Iterator[str]:
        for path in map(Path, paths):
            if not path.exists():
                raise InputError("corpus file not found", file=str(path), hint="pass text or record files")
            if path.suffix.lower() in TEXT_SUFFIXES:
                paragraphs = re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace"))
                yield from (p.strip() for p in paragraphs if p.strip())
            else:
                for record in read_records(path, salvage=True):
                    yield "\n".join(m["content"] for m in record["messages"] if m.get("content"))

    return islice(texts(), limit)


def train_tokenizer(corpus: list[str | Path], out_dir: str | Path, *, vocab_size: int = 8000,
                    limit: int | None = None) -> dict[str, Any]:
    """Train a byte-level BPE with ChatML special tokens on ``corpus``; save it to ``out_dir``.

    Returns ``{"out_dir", "vocab_size", "texts", "characters"}``.
    """
    from oidkit.models.tiny import build_tokenizer

    refuse_overwriting_inputs([], list(corpus), folders=[out_dir])
    texts = list(corpus_texts(corpus, limit=limit))
    if not texts:
        raise InputError("the corpus holds no text", file=", ".join(map(str, corpus)),
                         hint="pass text files or record files with message contents")
    tokenizer = build_tokenizer(vocab_size, texts)
    with atomic_folder(out_dir) as temp:
        tokenizer.save_pretrained(temp)
    return {"out_dir": str(out_dir), "vocab_size": len(tokenizer), "texts": len(texts),
            "characters": sum(map(len, texts))}


def count_words(text: str, language: str) -> int:
    """Whitespace words for English; jieba's words for Chinese (Chinese writes no spaces between words)."""
    if language == "zh":
        import jieba

        return sum(1 for w in jieba.cut(text) if w.strip())
    return len(text.split())


def load_tokenizer(name_or_path: str) -> Any:
    """A tokenizer folder, a model folder or alias (``oidkit.models.resolve_model``)."""
    from transformers import AutoTokenizer

    from oidkit.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(name_or_path))


def tokenizer_stats(corpus: list[str | Path], tokenizers: list[str], *, limit: int | None = None) -> dict[str, Any]:
    """Compare tokenizers on one corpus, per language (en / zh).

    For each tokenizer: ``tokens``, ``tokens_per_char``, ``tokens_per_word`` per language; ``unknown_tokens``
    (ids of the unknown token: text the tokenizer cannot represent), ``lossy_texts`` (texts that do not decode
    back to themselves), ``vocab_used`` (distinct ids seen / vocabulary size).
    """
    import jieba

    jieba.setLogLevel(60)  # its "building prefix dict" chatter goes to stderr otherwise
    texts = list(corpus_texts(corpus, limit=limit))
    by_language: dict[str, list[str]] = {"en": [], "zh": []}
    for text in texts:
        by_language[script_language(text)].append(text)
    corpus_counts = {lang: {"texts": len(ts), "characters": sum(map(len, ts)),
                            "words": sum(count_words(t, lang) for t in ts)} for lang, ts in by_language.items()}
    results = {}
    for name in tokenizers:
        tokenizer = load_tokenizer(name)
        used: set[int] = set()
        unknown = lossy = 0
        per_language = {}
        for lang, ts in by_language.items():
            ids = tokenizer(ts, add_special_tokens=False)["input_ids"] if ts else []
            for text, row in zip(ts, ids, strict=True):
                used.update(row)
                unknown += row.count(tokenizer.unk_token_id) if tokenizer.unk_token_id is not None else 0
                lossy += tokenizer.decode(row) != text
            n_tokens, counts = sum(map(len, ids)), corpus_counts[lang]
            per_language[lang] = {"tokens": n_tokens,
                                  "tokens_per_char": n_tokens / counts["characters"] if counts["characters"] else None,
                                  "tokens_per_word": n_tokens / counts["words"] if counts["words"] else None}
        results[name] = {"vocab_size": len(tokenizer), "languages": per_language, "unknown_tokens": unknown,
                         "lossy_texts": lossy, "vocab_used": len(used),
                         "vocab_used_fraction": len(used) / len(tokenizer)}
    return {"corpus": corpus_counts, "tokenizers": results}
