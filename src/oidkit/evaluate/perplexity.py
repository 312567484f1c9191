"""Perplexity of a causal language model on canonical records, over assistant tokens only or all tokens.

Records are tokenized exactly as training tokenizes them (``oidkit.core.chat.encode_record``: the
tokenizer's chat template, assistant turns located by character spans, labels already shifted), so the
perplexity measured here is the one the training loss optimises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from oidkit.core.chat import IGNORE_INDEX, encode_record, resolve_chat_template


def scored_logits(model: Any, input_ids: Any, attention: Any, scored: Any) -> Any:
    """Float logits at the ``scored`` positions only, (n_scored, vocab).

    The output head runs on the scored positions' hidden states alone: a long conversation's full logits
    (4 x 2,500 tokens x a 49k vocabulary is 2 GB in float32) cost more than the model itself. Models whose
    head does more than a matrix product (logit soft-capping or scaling) get the full logits, then the rows.
    """
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    plain_head = not any(getattr(model.config, k, None) for k in ("final_logit_softcapping", "logit_scale"))
    if base is None or head is None or not plain_head:
        return model(input_ids=input_ids, attention_mask=attention).logits[scored].float()
    hidden = base(input_ids=input_ids, attention_mask=attention).last_hidden_state
    return head(hidden[scored]).float()


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

    from oidkit.models.device import model_device

    device = model_device(model)
    template = resolve_chat_template(tokenizer, None)
    max_length = int(getattr(model.config, "max_position_embeddings", 2048))
    rows = []
    for record in records:
        encoded, _ = encode_record(record, tokenizer, template, train_on="assistant" if assistant_only else "all",
                                   max_seq_len=max_length, overlong="truncate")
        # a record without any scored token (no assistant turn) still gets its row, with perplexity None
        empty = ([tokenizer.eos_token_id], [IGNORE_INDEX])
        rows.append((encoded["input_ids"], encoded["labels"]) if encoded else empty)
    per_record: list[dict | None] = [None] * len(rows)
    total_nll, total_tokens = 0.0, 0
    # batches of similar lengths: padding a short record to a long one's width costs the long one's time
    by_length = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    for start in range(0, len(rows), batch_size):
        members = by_length[start:start + batch_size]
        batch = [rows[i] for i in members]
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
        labels = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in batch], device=device)
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device)
        # labels are shifted already: labels[t] is the token that the logits at position t predict
        scored = labels != IGNORE_INDEX
        with torch.no_grad():
            logits = scored_logits(model, input_ids, attention, scored)
        token_nll = torch.nn.functional.cross_entropy(logits, labels[scored], reduction="none")
        nll = torch.zeros(len(batch), device=device).index_add_(0, scored.nonzero()[:, 0], token_nll)
        counts = scored.sum(dim=1)
        for i, record_nll, count in zip(members, nll.tolist(), counts.tolist(), strict=True):
            per_record[i] = {"id": records[i].get("id"), "tokens": count,
                             "perplexity": math.exp(record_nll / count) if count else None}
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
