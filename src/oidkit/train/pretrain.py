"""Training from scratch (``model.init: scratch``, ``data.kind: text``; ``oid pretrain``): our readable Llama
(``oidkit.models.llama``) with random weights, on plain text.

The objective is next-token prediction on every token: ``loss = -mean log p(x[t+1] | x[..t])``. Texts
become examples of at most ``max_seq_len`` tokens (long texts are cut into chunks, each text ends with the
end-of-text token), examples are packed into rows, and the run goes through the same pieces as
``oid train``: ``packing.BatchSource`` and ``driver.drive`` (optimizer and schedule, resume, ``loop.train_loop``,
checkpoints, ``core.runs.MetricsLog``, progress).

Example ``recipes/pretrain_tiny.yaml`` (the config is ``train.config.TrainConfig``, as for fine-tuning)::

    tokenizer: demo-out/tokenizer            # oid tokenizer train ...
    data: {train: [corpus.txt], val_fraction: 0.05}
    model: {init: scratch, dim: 128, n_layers: 4, n_heads: 4, n_kv_heads: 2, intermediate_size: 344,
            max_seq_len: 256}
    optim: {lr: 3.0e-3, warmup_steps: 20}
    train: {output_dir: demo-out/pretrain, batch_size: 8, max_steps: 300, eval_every: 50}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from oidkit.atomic import atomic_folder, write_atomic
from oidkit.errors import InputError
from oidkit.models.device import is_cuda
from oidkit.models.llama import LlamaConfig, LlamaModel, NextTokenView
from oidkit.train.config import TrainConfig


def text_examples(texts: list[str], tokenizer: Any, max_seq_len: int) -> list[dict]:
    """Each text + end token, cut into chunks of ``max_seq_len`` tokens; labels are the next tokens."""
    examples = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []:
        ids = [*ids, tokenizer.eos_token_id]
        for start in range(0, len(ids) - 1, max_seq_len):
            chunk = ids[start:start + max_seq_len + 1]  # one extra token: the last position's target
            examples.append({"input_ids": chunk[:-1], "labels": chunk[1:]})
    return examples


def pretrain(config: TrainConfig, *, resume: bool, console: Any, asked_device: str) -> dict[str, Any]:
    """Train from scratch as configured; writes ``RUN/{final,best}/`` (HF folders), metrics and summary.

    ``resume``: continue from the latest ``RUN/checkpoints/step-N`` (written every ``train.save_every`` steps)
    exactly where it stopped: weights, optimizer, schedule, RNG and position in the data.
    """
    from oidkit.core.progress import TrainProgress
    from oidkit.core.runs import read_metrics
    from oidkit.models.tokenizer import corpus_texts, load_tokenizer
    from oidkit.train.driver import drive, finish_run, start_run
    from oidkit.train.packing import BatchSource, eval_batches, pack_examples

    t, shape = config.train, config.model
    run_dir = start_run(config, t, asked_device=asked_device)

    tokenizer = load_tokenizer(config.tokenizer)
    texts = list(corpus_texts(config.data.train, limit=config.data.max_texts))
    if config.data.validation:
        held_out = list(corpus_texts(config.data.validation))
    else:
        cut = len(texts) - int(len(texts) * config.data.val_fraction)
        texts, held_out = texts[:cut], texts[cut:]
    train = text_examples(texts, tokenizer, shape.max_seq_len)
    validation_examples = text_examples(held_out, tokenizer, shape.max_seq_len)
    if not train:
        raise InputError("no training text", file=", ".join(config.data.train), hint="check data.train")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pin = is_cuda(t.device)
    source = BatchSource(train, pack_examples(train, shape.max_seq_len), batch_size=t.batch_size, pad_id=pad,
                         seed=t.seed, pin=pin)
    validation = eval_batches(validation_examples, pack_examples(validation_examples, shape.max_seq_len),
                              t.batch_size, pad, t.eval_batches, pin=pin) if validation_examples else None

    model = LlamaModel(LlamaConfig(
        vocab_size=len(tokenizer), dim=shape.dim, n_layers=shape.n_layers, n_heads=shape.n_heads,
        n_kv_heads=shape.n_kv_heads, intermediate_size=shape.intermediate_size, max_seq_len=shape.max_seq_len,
        rope_theta=shape.rope_theta, tie_embeddings=shape.tie_embeddings, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)).to(t.device)

    def save_model(folder: Path) -> None:
        with atomic_folder(folder, owned=True) as temp:
            model.save_pretrained(temp)
            tokenizer.save_pretrained(temp)

    with TrainProgress(console) as bars:
        driven = drive(NextTokenView(model), source, validation, t, config.optim, run_dir, save_weights=save_model,
                       bars=bars, console=console, resume=resume, eval_at_start=True)
    finish_run(driven, run_dir, "final", save_model)
    state = driven.state
    best = state.best_eval if validation else None
    # step 0 is the untrained model: about ln(vocab) nats per token
    initial_eval = next((r["loss"] for r in read_metrics(run_dir / "metrics.csv")
                         if r["split"] == "eval" and r["step"] == 0), None)
    summary = {"device": t.device, "steps": state.step, "tokens": state.tokens,
               "parameters": sum(p.numel() for p in model.parameters()),
               "train_examples": len(train), "validation_examples": len(validation_examples),
               "first_train_loss": state.history[0]["loss"] if state.history else None,
               "final_train_loss": state.history[-1]["loss"] if state.history else None,
               "initial_eval_loss": initial_eval, "best_eval_loss": best,
               "best_eval_perplexity": math.exp(best) if best is not None else None,
               "uniform_loss": math.log(len(tokenizer)), "model": str(run_dir / "final")}
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary
