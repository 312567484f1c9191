"""Fine-tuning (``model.init: pretrained``, ``data.kind: chat``): model (+ LoRA) -> tokenised, packed records ->
``driver.drive`` -> checkpoints, weights, plots.

Run folder layout::

    RUN/config.yaml          the validated config (how this result was made; train.device as asked)
    RUN/data.json            tokenisation counts (kept, truncated, dropped, tokens, cache hit/miss)
    RUN/metrics.csv          one row per step (train) and per evaluation (eval); RUN/tensorboard/ if installed
    RUN/checkpoints/step-N/  resumable state (trainable weights, optimizer, scheduler, RNG, data position)
    RUN/last/, RUN/best/     adapter (LoRA) or full weights in safetensors, with the tokenizer and template
    RUN/loss.png, RUN/summary.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from oidkit.atomic import atomic_folder, write_atomic
from oidkit.core.chat import resolve_chat_template
from oidkit.errors import ConfigError
from oidkit.models.device import is_cuda
from oidkit.models.llama import NextTokenView, adapter_to_hf, our_linear_names
from oidkit.models.loading import quiet_peft
from oidkit.train.config import TrainConfig
from oidkit.train.data import load_tokenized
from oidkit.train.distributed import Dist, barrier, gather, init_distributed, shutdown
from oidkit.train.driver import drive, finish_run, start_run
from oidkit.train.packing import BatchSource, eval_batches, pack_examples, single_rows


def load_base(config: TrainConfig) -> tuple[Any, Any]:
    """The base model and its tokenizer, as ``oidkit.models.load_model`` loads them (``model.impl: oidkit``: our
    readable Llama in ``NextTokenView``); the loop puts it in train mode."""
    from oidkit.models import load_model

    return load_model(config.model.name, dtype=config.model.dtype, device=config.train.device,
                      impl=config.model.impl)


def apply_method(model: Any, config: TrainConfig) -> Any:
    """Wrap in LoRA adapters (peft) or make every parameter trainable (full fine-tuning)."""
    if config.method == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora, targets, task = config.lora, config.lora.target_modules, "CAUSAL_LM"
    if isinstance(model, NextTokenView):
        if isinstance(targets, str):
            raise ConfigError(f"lora.target_modules {targets!r}: with model.impl=oidkit give a list of names, "
                              "e.g. [q_proj, v_proj]")
        # peft's CAUSAL_LM wrapper expects a transformers model; the plain wrapper works on any module
        targets, task = our_linear_names(targets), None
    with quiet_peft():
        return get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                target_modules=targets, task_type=task))


def prepare_data(config: TrainConfig, tokenizer: Any, template: str, ctx: Dist,
                 progress: Any = None) -> tuple[list[dict], list[dict], dict]:
    """``(train_examples, eval_examples, counts)``; process 0 tokenises, the others then read its cache."""
    data = config.data
    options = {"train_on": data.train_on, "max_seq_len": data.max_seq_len, "overlong": data.overlong,
               "reasoning": data.reasoning}
    load = dict(num_proc=data.num_proc, cache_dir=data.cache_dir, progress=progress, **options)
    for turn in ("main", "others"):
        if (turn == "main") == ctx.is_main:
            train, counts = load_tokenized(data.train, tokenizer, template, max_examples=data.max_examples, **load)
            held_out, eval_counts = (load_tokenized(data.validation, tokenizer, template, **load)
                                     if data.validation else ([], None))
        barrier(ctx)
    if not train:
        raise ConfigError(f"{data.train}: no trainable example left after tokenisation ({counts}); raise "
                          "data.max_seq_len or set data.overlong=truncate")
    if data.val_fraction and not data.validation:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.train.seed)).tolist()
        cut = max(1, int(len(train) * data.val_fraction))
        held_out, train = [train[i] for i in order[:cut]], [train[i] for i in order[cut:]]
    return train, held_out, {"train": counts, "validation": eval_counts, "train_examples": len(train),
                             "eval_examples": len(held_out)}


def save_weights(model: Any, tokenizer: Any, folder: Path) -> None:
    """Adapter (peft) or full model in safetensors, with the tokenizer (and the chat template used).

    Runs of our own Llama are saved under transformers' names, so export, eval and serve read them exactly
    like runs of the transformers model.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    with atomic_folder(folder, owned=True) as temp:
        if isinstance(model, NextTokenView):
            model.model.save_pretrained(temp)
        else:
            model.save_pretrained(temp)
            if isinstance(base, NextTokenView):
                adapter_to_hf(temp)
        tokenizer.save_pretrained(temp)


def finetune(config: TrainConfig, *, resume: bool, console: Any, asked_device: str) -> dict:
    """Fine-tune as configured; returns the summary written to ``RUN/summary.json``."""
    from oidkit.core.progress import TrainProgress

    ctx = init_distributed(config.train.device)
    t = config.train
    run_dir = start_run(config, t, asked_device=asked_device, is_main=ctx.is_main)
    model, tokenizer = load_base(config)
    template = resolve_chat_template(tokenizer, config.data.chat_template)
    tokenizer.chat_template = template
    with TrainProgress(console, enabled=ctx.is_main) as bars:
        train, held_out, counts = prepare_data(config, tokenizer, template, ctx, progress=bars.tokenising)
        if ctx.is_main:
            write_atomic(run_dir / "data.json", json.dumps(counts, indent=2))
        pack = (lambda ex: pack_examples(ex, config.data.max_seq_len)) if config.data.packing else single_rows
        pin = is_cuda(t.device)
        source = BatchSource(train, pack(train), batch_size=t.batch_size, pad_id=tokenizer.pad_token_id,
                             seed=t.seed, rank=ctx.rank, world=ctx.world, pin=pin)
        validation = eval_batches(held_out, pack(held_out), t.batch_size, tokenizer.pad_token_id,
                                  t.eval_batches, pin=pin) if held_out else None
        model = apply_method(model, config)
        driven = drive(model, source, validation, t, config.optim, run_dir, bars=bars, console=console,
                       save_weights=lambda folder: save_weights(model, tokenizer, folder), resume=resume,
                       is_main=ctx.is_main, world=ctx.world)
    state = driven.state
    # Lets anyone check that data parallel processes ended with the same weights after seeing different rows.
    checksum = sum(float(p.detach().double().sum()) for p in driven.model.parameters() if p.requires_grad)
    ranks = gather(ctx, {"rank": ctx.rank, "first_rows": source.row_ids(0), "param_checksum": checksum})
    summary = {"device": t.device, "steps": state.step, "stopped_early": state.stopped_early, "tokens": state.tokens,
               "final_train_loss": state.history[-1]["loss"] if state.history else None,
               "best_eval_loss": state.best_eval if validation else None, "data": counts, "ranks": ranks}
    finish_run(driven, run_dir, "last", lambda folder: save_weights(driven.model, tokenizer, folder))
    if ctx.is_main:
        write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    shutdown(ctx)
    return summary
