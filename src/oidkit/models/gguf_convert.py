"""Convert a GGUF file to a Hugging Face safetensors folder (weights dequantised, tokenizer, chat template).

transformers reads GGUF directly (``from_pretrained(dir, gguf_file=name)``) but dequantises on every load,
which takes seconds to tens of seconds; converting once makes every later load a plain safetensors read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from oidkit.errors import InputError


def is_converted(folder: Path) -> bool:
    """True when ``folder`` holds a complete converted model (the conversion writes ``config.json`` last)."""
    return (folder / "config.json").exists() and any(folder.glob("*.safetensors"))


def gguf_cache_name(gguf_path: Path) -> str:
    """Cache folder name for an arbitrary .gguf file: its stem plus a digest of path, size and mtime."""
    stat = gguf_path.stat()
    key = f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return f"{gguf_path.stem.lower()}-{hashlib.blake2b(key, digest_size=4).hexdigest()}"


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, dtype: str = "float32") -> Path:
    """Dequantise ``gguf_path`` into ``out_dir`` (model.safetensors, config, tokenizer, chat template).

    Written to a temporary sibling folder and renamed at the end, so a concurrent or interrupted
    conversion never leaves a half-written model that looks complete.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise InputError("GGUF file not found", file=str(gguf_path), hint="pass the path of an existing .gguf file")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, dtype))
    # The weights are dequantised already; drop the GGUF quantizer marker so the model saves as plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if is_converted(out_dir):  # another process finished the same conversion meanwhile: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
        return out_dir
    shutil.rmtree(out_dir, ignore_errors=True)  # a partial folder left by something else
    try:
        staging.rename(out_dir)
    except OSError:  # lost a race with another process renaming at the same moment
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
