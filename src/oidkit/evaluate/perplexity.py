"""Perplexity of a causal language model on canonical records, over assistant tokens only or all tokens.

A record is rendered with the tokenizer's chat template; the tokens of each assistant turn (its content
and the template's end-of-turn marker, what a model is trained to produce) are found from character
spans: the text between the rendering of the turns before it plus the generation prompt, and the
rendering that includes it. Working in characters keeps this right however the BPE merges at boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from oidkit.errors import InputError

IGNORE_INDEX = -100


def assistant_spans(messages: list[dict], tokenizer: Any) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the ``(start, end)`` character spans of its assistant turns."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (text.startswith(before) and text.startswith(through)):
            raise InputError("the chat template does not render conversations prefix by prefix, so assistant "
                             "tokens cannot be located", hint="use --tokens all for this model")
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_for_loss(record: dict, tokenizer: Any, assistant_only: bool = True,
                      max_length: int | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one record; labels are ``-100`` outside assistant turns when ``assistant_only``."""
    text, spans = assistant_spans(record["messages"], tokenizer)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                        truncation=max_length is not None, max_length=max_length)
    input_ids = list(encoded["input_ids"])
    if not assistant_only:
        return input_ids, list(input_ids)
    labels = [
        token if any(start <= offset[0] < end for start, end in spans) else IGNORE_INDEX
        for token, offset in zip(input_ids, encoded["offset_mapping"], strict=True)
    ]
    return input_ids, labels


def perplexity(
    model: Any,
    tokenizer: Any,
    records: list[dict],
    *,
    assistant_only: bool = True,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Corpus perplexity ``exp(total NLL / scored tokens)`` plus the per-record perplexities, batched.

    Returns ``{"perplexity", "nll", "tokens", "per_record": [{"id", "perplexity", "tokens"}]}``; records
    that end up with no scored token (e.g. truncated away) are listed with perplexity ``None``.
    """
    import torch

    max_length = getattr(model.config, "max_position_embeddings", None)
    rows = [tokenize_for_loss(r, tokenizer, assistant_only, max_length) for r in records]
    per_record, total_nll, total_tokens = [], 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        # position t predicts token t+1
        targets = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
        ).sum(dim=1)
        counts = (targets != IGNORE_INDEX).sum(dim=1)
        for record, record_nll, count in zip(records[start:start + batch_size], nll.tolist(), counts.tolist(),
                                             strict=True):
            per_record.append({"id": record.get("id"), "tokens": count,
                               "perplexity": math.exp(record_nll / count) if count else None})
            total_nll += record_nll
            total_tokens += count
        if progress:
            progress(len(batch))
    return {
        "perplexity": math.exp(total_nll / total_tokens) if total_tokens else None,
        "nll": total_nll,
        "tokens": total_tokens,
        "per_record": per_record,
    }
