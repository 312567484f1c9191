"""Load a causal language model and its tokenizer from a local folder (or an alias, see registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def resolve_model(name_or_path: str | Path) -> Path | str:
    """A local folder as a ``Path``; anything else is returned as given (a hub id)."""
    path = Path(name_or_path).expanduser()
    return path if path.exists() else str(name_or_path)


def load_model(name_or_path: str | Path, *, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)`` in eval mode; a tokenizer without pad token gets its eos as pad."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(where)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype)).to(device)
    model.eval()
    return model, tokenizer
