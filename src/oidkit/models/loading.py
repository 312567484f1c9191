"""Load a causal language model and its tokenizer from a folder, an alias, a .gguf file or a hub id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oidkit.models.registry import KNOWN_MODELS, cache_root, is_converted, pull_model


def resolve_model(name_or_path: str | Path) -> Path | str:
    """Where to load a model from.

    - a local folder: itself;
    - a ``.gguf`` file: its converted safetensors folder in the cache (converted on first use);
    - a known alias (``oid models list``): its cached folder, pulled on first use;
    - anything else: returned as given (a hub id, used only when the hub is reachable).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        from oidkit.models.gguf_convert import convert_gguf, gguf_cache_name

        folder = cache_root() / gguf_cache_name(path)
        return folder if is_converted(folder) else convert_gguf(path, folder)
    if path.exists():
        return path
    if str(name_or_path) in KNOWN_MODELS:
        return pull_model(str(name_or_path))
    return str(name_or_path)


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
