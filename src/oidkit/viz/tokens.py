"""Where the model is surprised: each token coloured by its loss ``-log p(token | tokens before it)``.

A low loss (pale) means the model saw the token coming; a high one (red) marks what it did not expect:
rare names, numbers, the first word of an answer, or text unlike its training data.
"""

from __future__ import annotations

import html
import json
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from oidkit.atomic import write_atomic
from oidkit.errors import InputError
from oidkit.viz.page import html_page

RED_AT_LOSS = 8.0  # nats; losses at or above this are drawn fully red (a uniform guess over 3000 tokens is 8)


@torch.no_grad()
def token_losses(model: Any, tokenizer: Any, text: str, *, max_tokens: int = 1024) -> list[dict[str, Any]]:
    """Per token: its text, its loss in nats (None for the first token, which has no context) and the
    token the model expected most with that token's probability."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    if not ids:
        raise InputError("the text has no tokens", hint="pass a non-empty text")
    log_probs = model(torch.tensor([ids]))[0].float().log_softmax(-1)
    rows = [{"token": tokenizer.decode([ids[0]]), "loss": None, "expected": None, "expected_p": None}]
    for t in range(1, len(ids)):
        predicted = log_probs[t - 1]  # position t-1 predicts token t
        best = int(predicted.argmax())
        rows.append({"token": tokenizer.decode([ids[t]]), "loss": float(-predicted[ids[t]]),
                     "expected": tokenizer.decode([best]), "expected_p": float(predicted[best].exp())})
    return rows


def record_text(data: str | Path, index: int, tokenizer: Any) -> str:
    """Record ``index`` of ``data`` rendered with the tokenizer's chat template (its messages joined if none)."""
    from oidkit.core.chat import plain_messages
    from oidkit.io import read_records

    record = next(islice(read_records(data, salvage=True), index, None), None)
    if record is None:
        raise InputError(f"there is no record {index}", file=str(data), hint="pass a smaller --index")
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(plain_messages(record), tokenize=False)
    return "\n\n".join(m["content"] for m in record["messages"])


def token_spans(rows: list[dict[str, Any]]) -> str:
    """The tokens as ``<span>``s with a red background proportional to the loss and a tooltip."""
    spans = []
    for row in rows:
        if row["loss"] is None:
            spans.append(f"<span title='first token: no context'>{html.escape(row['token'])}</span>")
            continue
        alpha = min(row["loss"] / RED_AT_LOSS, 1.0)
        tip = f"loss {row['loss']:.2f} nats; expected {json.dumps(row['expected'])} (p {row['expected_p']:.2f})"
        spans.append(f"<span style='background: rgba(220,30,30,{alpha:.2f})' title='{html.escape(tip)}'>"
                     f"{html.escape(row['token'])}</span>")
    return "".join(spans)


def write_token_loss(model_name: str, out_dir: str | Path, *, text: str | None = None, data: str | None = None,
                     index: int = 0, max_tokens: int = 1024) -> dict[str, Any]:
    """Write ``tokens.html`` (and ``tokens.json``) for ``text`` or record ``index`` of ``data``."""
    from oidkit.models.llama import load_llama

    if (text is None) == (data is None):
        raise InputError("give either a text or --data FILE --index I", hint="oid viz tokens MODEL 'some text'")
    model, tokenizer = load_llama(model_name)
    text = text if text is not None else record_text(data, index, tokenizer)
    rows = token_losses(model, tokenizer, text, max_tokens=max_tokens)
    scored = [r["loss"] for r in rows if r["loss"] is not None]
    mean = sum(scored) / len(scored) if scored else float("nan")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    body = (f"<p class='note'>model <code>{html.escape(model_name)}</code>; {len(rows)} tokens, mean loss "
            f"{mean:.3f} nats (perplexity {torch.tensor(mean).exp():.1f}). Red = surprising: background "
            f"opacity = loss / {RED_AT_LOSS:g} nats. Hover a token for its loss and what the model expected.</p>"
            f"<div style='white-space: pre-wrap; font-family: monospace; line-height: 1.6'>{token_spans(rows)}</div>")
    page = out_dir / "tokens.html"
    write_atomic(page, html_page("Token loss", body))
    write_atomic(out_dir / "tokens.json", json.dumps(rows, ensure_ascii=False, indent=1))
    return {"html": str(page), "tokens": len(rows), "mean_loss": mean}
