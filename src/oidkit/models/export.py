"""``oid export``: turn a run folder into a standalone Hugging Face model folder.

``merge`` folds LoRA adapters into the base weights (peft ``merge_and_unload``) so plain ``transformers``
loads the result without oidkit or peft. Other formats (e.g. GGUF) are added as further functions here.
Both the merged folder and the bare adapter get a model card (``models/card.py``) as their README.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from oidkit.atomic import atomic_folder
from oidkit.errors import ConfigError
from oidkit.io.outputs import refuse_overwriting_inputs

# the end-of-run weights: fine-tuning names them last/, training from scratch final/
LAST_WEIGHTS = ("last", "final")


def run_weights(run_dir: str | Path, which: str = "best") -> Path:
    """``RUN/best`` (falls back to the last weights when no evaluation ran) or the last weights (``RUN/last`` of
    a fine-tuning run, ``RUN/final`` of a run from scratch)."""
    run_dir = Path(run_dir)
    names = list(dict.fromkeys([which, *LAST_WEIGHTS] if which in ("best", *LAST_WEIGHTS) else [which]))
    for name in names:
        if (run_dir / name / "tokenizer_config.json").exists():
            return run_dir / name
    raise ConfigError(f"{run_dir}: no trained weights in {'/, '.join(names)}/; is this an `oid train` or "
                      "`oid pretrain` output folder of a finished run?")


def export_merged(run_dir: str | Path, out_dir: str | Path, *, which: str = "best", dtype: str = "float32",
                  files: dict[str, str] | None = None) -> Path:
    """Write base model + merged adapter (or the fully fine-tuned model) with its tokenizer to ``out_dir``;
    ``files`` (name -> text: the card, an application's prompt) go in before the folder is published."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oidkit.models.loading import quiet_peft, resolve_model

    weights, out_dir = run_weights(run_dir, which), Path(out_dir)
    refuse_overwriting_inputs([], [run_dir], folders=[out_dir])
    tokenizer = AutoTokenizer.from_pretrained(weights)
    with atomic_folder(out_dir) as temp:
        if (weights / "adapter_config.json").exists():
            from peft import PeftModel

            config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
            base = AutoModelForCausalLM.from_pretrained(resolve_model(config["model"]["name"]),
                                                        dtype=getattr(torch, dtype))
            with quiet_peft():
                model = PeftModel.from_pretrained(base, weights).merge_and_unload()
            model.save_pretrained(temp)
        else:
            shutil.copytree(weights, temp, dirs_exist_ok=True)
        tokenizer.save_pretrained(temp)
        write_files(temp, files)
    return out_dir


def export_adapter(run_dir: str | Path, out_dir: str | Path, *, which: str = "best",
                   files: dict[str, str] | None = None) -> Path:
    """Copy the trained weights as they are (a peft adapter folder for LoRA runs), plus ``files``."""
    weights = run_weights(run_dir, which)
    refuse_overwriting_inputs([], [run_dir], folders=[out_dir])
    with atomic_folder(out_dir) as temp:
        shutil.copytree(weights, temp, dirs_exist_ok=True)
        write_files(temp, files)
    return Path(out_dir)


def write_files(folder: Path, files: dict[str, str] | None) -> None:
    """Text files into the export's temporary folder: written there, they are part of what the folder holds when
    it replaces an earlier export (written after, an export into the same folder again refused them as foreign)."""
    for name, text in (files or {}).items():
        (folder / name).write_text(text, encoding="utf-8")  # peft's placeholder README.md is replaced


def export_run(run_dir: str | Path, out_dir: str | Path, *, format: str = "hf", which: str = "best",
               merge: bool = True, files: dict[str, str] | None = None, **card: str | None) -> Path:
    """Export in ``format``; ``hf`` writes a merged model (or the bare adapter with ``merge=False``) with its
    model card as README.md and ``files`` (name -> text) beside it.

    ``card`` goes to the model card: ``base_model`` (a hub id), ``license``, ``eval_report``, ``data_card``.
    """
    from oidkit.models.card import model_card

    if format != "hf":
        raise ConfigError(f"unknown export format {format!r}; available: hf")
    weights = run_weights(run_dir, which)
    refuse_overwriting_inputs([], [run_dir], folders=[out_dir])  # before the card reads anything
    adapter = not merge and (weights / "adapter_config.json").exists()
    text = model_card(run_dir, out_dir, adapter=adapter, **card)  # a bad --eval-report fails before any work
    files = {"README.md": text, **(files or {})}
    if merge:
        return export_merged(run_dir, out_dir, which=which, files=files)
    return export_adapter(run_dir, out_dir, which=which, files=files)
