"""The training config: one YAML file, ``key=value`` overrides (torchtune style), validated before any work.

One config for both kinds of run, chosen by settings: ``model.init: pretrained`` (the default) fine-tunes
``model.name`` on chat records (``data.kind: chat``); ``model.init: scratch`` builds a new Llama of the shape
the ``model`` section gives and trains it on plain text (``data.kind: text``) with ``tokenizer``.
``train.run.run_training`` dispatches on them; ``oid pretrain`` is ``oid train`` with ``model.init=scratch``.

Example ``recipes/train_demo.yaml`` (fine-tuning; ``recipes/pretrain_tiny.yaml`` is the scratch one)::

    model: {name: smollm2-135m-instruct}
    data: {train: demo-out/curated/train.jsonl, max_seq_len: 512, packing: true}
    method: lora
    lora: {r: 16, alpha: 32}
    optim: {lr: 2.0e-4, warmup_steps: 5}
    train: {output_dir: demo-out/train, batch_size: 2, max_steps: 50}

Override from the command line with dotted keys: ``oid train cfg.yaml optim.lr=1e-4 train.max_steps=10``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from oidkit.atomic import write_atomic
from oidkit.core.config import load_config
from oidkit.io.outputs import refuse_overwriting_inputs


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    """``model.init: pretrained``: the model to fine-tune."""

    init: Literal["pretrained"] = "pretrained"
    name: str = Field(description="local folder, .gguf file, alias (oid models list) or downloaded hub id")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    impl: Literal["transformers", "oidkit"] = Field(
        "transformers", description="transformers' model class, or our readable Llama (oidkit.models.llama; "
        "Llama-architecture folders only); both save folders transformers loads")


class ScratchModel(Section):
    """``model.init: scratch``: the shape of a new Llama (``oidkit.models.llama``), random weights."""

    init: Literal["scratch"]
    dim: int = Field(128, gt=0)
    n_layers: int = Field(4, gt=0)
    n_heads: int = Field(4, gt=0)
    n_kv_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(344, gt=0)
    max_seq_len: int = Field(256, gt=8, description="context length; texts are cut into chunks of this many tokens")
    rope_theta: float = 10000.0
    tie_embeddings: bool = True


class DataSection(Section):
    """``data.kind: chat``: records, tokenised through a chat template with assistant masks."""

    kind: Literal["chat"] = "chat"
    train: str | list[str]
    validation: str | list[str] | None = Field(None, description="validation records; else val_fraction of train")
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    max_examples: int | None = Field(
        None, gt=0, description="train on the first N records that fit data.max_seq_len (the rest are not read)")
    chat_template: str | None = Field(None, description="None: the model's own; 'chatml'; or a .jinja file")
    train_on: Literal["assistant", "all", "last_assistant"] = "assistant"
    reasoning: Literal["train", "mask", "drop"] = Field(
        "train", description="assistant reasoning: learn it with the answer, keep it as context without loss, "
                             "or leave it out")
    max_seq_len: int = Field(512, gt=8)
    overlong: Literal["drop", "truncate"] = Field(
        "drop", description="records whose first answer does not fit: drop them, or truncate them (counted)")
    packing: bool = True
    num_proc: int = Field(1, ge=1, description="processes that tokenise")
    cache_dir: str | None = Field(None, description="tokenisation cache (default: $OIDKIT_CACHE/tokenized)")


class TextData(Section):
    """``data.kind: text``: plain text, next-token loss on every token."""

    kind: Literal["text"]
    train: list[str] = Field(description="text files (.txt/.md, one text per paragraph) or record files")
    validation: list[str] | None = None
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="texts held out when no validation is given")
    max_texts: int | None = Field(None, gt=0, description="read only the first N texts of train")


def _tagged(field: str, default: str, choices: str) -> Discriminator:
    """Pick a section's class by its ``field`` (``model.init``, ``data.kind``), ``default`` when it is absent.

    Tags read ``field=value``: error messages leave out location parts holding ``=`` (no key can), so a
    problem reads ``model.dim``, not ``model.<tag>.dim``.
    """
    def tag(section: Any) -> str:
        value = section.get(field, default) if isinstance(section, dict) else getattr(section, field, default)
        return f"{field}={value}"

    return Discriminator(tag, custom_error_type="invalid_choice", custom_error_message=f"{field} must be {choices}")


SCRATCH_DEFAULTS = {"method": "full", "optim": {"lr": 3e-3, "warmup_steps": 20}}  # small models take large rates


class LoraSection(Section):
    r: int = Field(8, gt=0)
    alpha: float = 16.0
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="module names (or a regex, transformers only); model.impl=oidkit also takes wq, wk, ... w3")


class OptimSection(Section):
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr as a fraction of lr (cosine, linear)")
    grad_clip: float | None = Field(1.0, gt=0)


class LoopSection(Section):
    output_dir: str
    seed: int = 42
    batch_size: int = Field(4, gt=0, description="sequences per micro-batch per process")
    grad_accum: int = Field(1, gt=0)
    max_steps: int = Field(100, gt=0, description="optimizer steps")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: only at the end)")
    eval_batches: int | None = Field(None, gt=0, description="cap on validation batches per evaluation")
    early_stopping_patience: int | None = Field(None, gt=0, description="evaluations without improvement")
    save_every: int = Field(0, ge=0, description="checkpoint every N steps (0: only at the end)")
    log_every: int = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when torch sees a GPU, else the CPU (oid train --device sets it)")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's choice)")


class TrainConfig(Section):
    model: Annotated[Annotated[ModelSection, Tag("init=pretrained")] | Annotated[ScratchModel, Tag("init=scratch")],
                     _tagged("init", "pretrained", "pretrained or scratch")]
    data: Annotated[Annotated[DataSection, Tag("kind=chat")] | Annotated[TextData, Tag("kind=text")],
                    _tagged("kind", "chat", "chat or text")]
    tokenizer: str | None = Field(None, description="model.init=scratch: tokenizer folder (oid tokenizer train) or "
                                  "model folder / alias")
    method: Literal["lora", "full"] = "lora"
    lora: LoraSection = LoraSection()
    optim: OptimSection = OptimSection()
    train: LoopSection

    @model_validator(mode="before")
    @classmethod
    def _scratch_defaults(cls, tree: Any) -> Any:
        """A scratch run reads text and trains every weight at a higher rate unless the config says otherwise."""
        model = tree.get("model") if isinstance(tree, dict) else None
        if not (isinstance(model, dict) and model.get("init") == "scratch"):
            return tree
        tree = {**tree, "method": tree.get("method", SCRATCH_DEFAULTS["method"])}
        if isinstance(tree.get("data"), dict):
            tree["data"] = {"kind": "text", **tree["data"]}
        if isinstance(tree.get("optim", {}), dict):
            tree["optim"] = {**SCRATCH_DEFAULTS["optim"], **tree.get("optim", {})}
        return tree

    @model_validator(mode="after")
    def _settings_agree(self) -> TrainConfig:
        scratch = self.model.init == "scratch"
        if scratch != (self.data.kind == "text"):
            raise ValueError(f"model.init={self.model.init} with data.kind={self.data.kind}: fine-tuning "
                             "(init=pretrained) reads chat records, training from scratch reads text")
        if scratch and not self.tokenizer:
            raise ValueError("model.init=scratch needs tokenizer (a folder from oid tokenizer train)")
        if scratch and self.method != "full":
            raise ValueError("model.init=scratch trains every weight: method must be full")
        if not scratch and self.tokenizer:
            raise ValueError("tokenizer is for model.init=scratch; a pretrained model brings its own")
        wants_eval = self.train.eval_every or self.train.early_stopping_patience
        if wants_eval and not (self.data.validation or self.data.val_fraction):
            raise ValueError("train.eval_every / early_stopping_patience need data.validation or data.val_fraction")
        return self


def load_train_config(path: str | Path | None, overrides: list[str] = (), base: dict[str, Any] | None = None
                      ) -> TrainConfig:
    """Read ``oid train``'s YAML config (or start from ``base``), apply ``key=value`` overrides, validate."""
    return load_config(path, overrides, TrainConfig, label="training config", base=base)


def save_config(config: BaseModel, path: str | Path) -> None:
    """Write the resolved config as YAML: every run folder says how it was made."""
    write_atomic(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def refuse_run_dir_holding_data(config: BaseModel) -> None:
    """``train.output_dir`` must not be, or hold, a data file the run reads: it writes into that folder."""
    data = [config.data.train] if isinstance(config.data.train, str) else list(config.data.train)
    validation = getattr(config.data, "validation", None)
    data += [validation] if isinstance(validation, str) else list(validation or [])
    refuse_overwriting_inputs([], data, folders=[config.train.output_dir])
