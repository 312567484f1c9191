"""Load a causal language model and its tokenizer from a folder, an alias, a .gguf file or a hub id."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from oidkit.errors import ConfigError
from oidkit.models.gguf_convert import convert_gguf, gguf_cache_name, is_converted
from oidkit.models.registry import KNOWN_MODELS, cache_root, pull_model


def resolve_model(name_or_path: str | Path) -> Path | str:
    """Where to load a model from, decided offline.

    - a local folder: itself;
    - a ``.gguf`` file: its converted safetensors folder in the cache (converted on first use);
    - a known alias (``oid models list``): its cached folder, pulled on first use;
    - a hub id already in the Hugging Face cache: returned as given;
    - anything else: a :class:`ConfigError` at once. A mistyped folder looks just like a hub id, and
      trying the hub for it means a minute of network timeouts and a traceback, so nothing is downloaded
      implicitly.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        folder = cache_root() / gguf_cache_name(path)
        return folder if is_converted(folder) else convert_gguf(path, folder)
    if path.exists():
        return path
    if str(name_or_path) in KNOWN_MODELS:
        return pull_model(str(name_or_path))
    if _in_hub_cache(str(name_or_path)):
        return str(name_or_path)
    raise ConfigError(f"unknown model {str(name_or_path)!r}: not a local folder, a .gguf file, a known alias "
                      f"({', '.join(KNOWN_MODELS)}) or a model in the Hugging Face cache\n"
                      "hint: check the path; `oid models list` shows the aliases; a hub model must be downloaded "
                      "first (huggingface-cli download OWNER/NAME), oidkit does not download implicitly")


def _in_hub_cache(name: str) -> bool:
    """Whether ``name`` is an ``owner/name`` hub id whose config is in the local Hugging Face cache."""
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


# A model spec may end in "@int8" (weight-only int8, ~0.9% perplexity cost on SmolLM2) or "@int8-dynamic"
# (int8 matmuls with per-token activation scales after SmoothQuant on packaged text, faster, ~1% cost), so
# every command that takes a model can serve or evaluate it quantised: `oid serve smollm2-135m-instruct@int8`,
# `oid eval DATA --compare M M@int8`.
QUANTIZE_SUFFIXES = {"@int8": "weight", "@int8-dynamic": "dynamic"}


def split_quantize(name_or_path: str | Path) -> tuple[str | Path, str | None]:
    """``(model, int8 mode or None)`` from a model spec with an optional ``@int8`` / ``@int8-dynamic`` suffix."""
    for suffix, mode in QUANTIZE_SUFFIXES.items():
        if str(name_or_path).endswith(suffix):
            return str(name_or_path)[: -len(suffix)], mode
    return name_or_path, None


def load_model(name_or_path: str | Path, *, dtype: str = "float32", device: str = "cpu",
               impl: str = "transformers") -> tuple[Any, Any]:
    """``(model, tokenizer)`` in eval mode; a tokenizer without pad token gets its eos as pad.

    ``name_or_path`` is a folder, alias, ``.gguf`` file or hub id, optionally ending in ``@int8`` or
    ``@int8-dynamic`` for int8 weights (CPU, float32 activations). ``impl="oidkit"`` loads the weights into
    our readable Llama, wrapped in ``NextTokenView`` so callers use it as a transformers model. ``device``:
    ``auto``, ``cpu`` or ``cuda`` (``models.device.resolve_device``; SDPA attention on both).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oidkit.models.device import is_cuda, resolve_device

    name_or_path, int8 = split_quantize(name_or_path)
    if int8 and device == "auto":
        device = "cpu"  # the int8 kernels are CPU kernels
    device = resolve_device(device)
    if int8 and is_cuda(device):
        raise ConfigError(f"{name_or_path}@int8: int8 weights run on the CPU only\n"
                          "hint: use --device cpu (or auto), or drop @int8 / --quantize to run on the GPU")
    where = resolve_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(where)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if impl == "oidkit":
        from oidkit.models.llama import LlamaModel, NextTokenView

        model = NextTokenView(LlamaModel.from_pretrained(where, dtype=getattr(torch, dtype)))
        model.name_or_path = str(where)  # what transformers models carry; peft writes it into adapter_config
    else:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype))  # SDPA: models.device
    model = model.to(device)
    if int8:
        from oidkit.models.quantize import calibration_tokens, quantize_int8

        # dynamic int8 rounds activations too: smoothing them first cuts its perplexity cost (2.7% -> ~1%)
        calibration = calibration_tokens(tokenizer) if int8 == "dynamic" else None  # int8 runs on CPU
        model = quantize_int8(model, mode=int8, calibration=calibration)
    model.eval()
    return model, tokenizer


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning peft triggers on every adapter it wraps or loads: it reads transformers' deprecated
    `is_gradient_checkpointing`, which the user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield
