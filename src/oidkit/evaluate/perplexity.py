"""Perplexity of a causal language model on canonical records, over assistant tokens only or all tokens.

Records are tokenized exactly as training tokenizes them (``oidkit.train.templates.encode_record``: the
tokenizer's chat template, assistant turns located by character spans, labels already shifted), so the
perplexity measured here is the one the training loss optimises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from oidkit.train.templates import IGNORE_INDEX, encode_record, resolve_chat_template


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

    template = resolve_chat_template(tokenizer, None)
    max_length = int(getattr(model.config, "max_position_embeddings", 2048))
    rows = []
    for record in records:
        encoded, _ = encode_record(record, tokenizer, template, train_on="assistant" if assistant_only else "all",
                                   max_seq_len=max_length, overlong="truncate")
        # a record without any scored token (no assistant turn) still gets its row, with perplexity None
        empty = ([tokenizer.eos_token_id], [IGNORE_INDEX])
        rows.append((encoded["input_ids"], encoded["labels"]) if encoded else empty)
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
        # labels are shifted already: labels[t] is the token that the logits at position t predict
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX,
                                                reduction="none").sum(dim=1)
        counts = (labels != IGNORE_INDEX).sum(dim=1)
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
