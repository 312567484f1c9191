"""Pretraining from scratch: a tiny model learns a synthetic language far below its initial loss."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from oidkit.models.tokenizer import train_tokenizer
from oidkit.train.config import load_train_config
from oidkit.train.pretrain import text_examples
from oidkit.train.run import run_training

WORDS = "zero one two three four five six seven eight nine".split()


def counting_text(rng: random.Random) -> str:
    """Words counting upwards modulo 10 from a random start: every word but the first is predictable."""
    start, length = rng.randrange(10), rng.randrange(6, 20)
    return " ".join(WORDS[(start + i) % 10] for i in range(length))


def test_text_examples_cut_long_texts_and_shift_labels():
    class Characters:  # a stand-in tokenizer: one id per character, end token 0
        eos_token_id = 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[ord(c) for c in t] for t in texts]}

    examples = text_examples(["abcdefg"], Characters(), max_seq_len=3)
    ids = [*map(ord, "abcdefg"), 0]
    assert [e["input_ids"] for e in examples] == [ids[0:3], ids[3:6], ids[6:7]]
    assert [e["labels"] for e in examples] == [ids[1:4], ids[4:7], ids[7:8]]


def counting_recipe(tmp_path) -> Path:
    """A counting corpus, a tokenizer trained on it and a tiny-model recipe (60 steps into RUN = tmp_path/run)."""
    if not (tmp_path / "pretrain.yaml").exists():
        rng = random.Random(0)
        corpus = tmp_path / "counting.txt"
        corpus.write_text("\n\n".join(counting_text(rng) for _ in range(400)))
        train_tokenizer([corpus], tmp_path / "tok", vocab_size=300)
        (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump({
            "tokenizer": str(tmp_path / "tok"),
            "data": {"train": [str(corpus)], "val_fraction": 0.1},
            "model": {"init": "scratch", "dim": 48, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                      "intermediate_size": 96, "max_seq_len": 64},
            "optim": {"lr": 1e-2, "warmup_steps": 5},
            "train": {"output_dir": str(tmp_path / "run"), "batch_size": 8, "max_steps": 60, "eval_every": 20},
        }))
    return tmp_path / "pretrain.yaml"


def test_tiny_model_learns_counting(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load_train_config(counting_recipe(tmp_path), ["train.seed=1"])
    summary = run_training(config)
    # untrained: about ln(vocab) = 5.7 nats; learned: only each text's first word (and its length) is uncertain
    assert summary["initial_eval_loss"] > 4.5
    assert summary["best_eval_loss"] < 0.3 * summary["initial_eval_loss"]
    assert summary["final_train_loss"] < 0.3 * summary["first_train_loss"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 60

    # the saved model is a plain Hugging Face folder, and it counts
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "best").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "best")
    prompt = tokenizer("three four five", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=3, do_sample=False)
    assert tokenizer.decode(out[0, prompt.shape[1]:]).split()[:2] == ["six", "seven"]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    from typer.testing import CliRunner

    from oidkit.cli import app
    from oidkit.core.runs import read_metrics

    recipe = counting_recipe(tmp_path)
    short = ["train.max_steps=6", "train.eval_every=2", "train.threads=1"]
    run_training(load_train_config(recipe, [*short, f"train.output_dir={tmp_path / 'straight'}"]))
    resumed = [*short, f"train.output_dir={tmp_path / 'resumed'}", "train.save_every=4"]
    run_training(load_train_config(recipe, resumed))
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["step-000004", "step-000006"]
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-000006")  # interrupted after the step-4 checkpoint
    result = CliRunner().invoke(app, ["pretrain", str(recipe), *resumed, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "step-000004 at step 4" in result.output.replace("\n", "")

    def rows(run: str) -> list[tuple]:
        return [(r["step"], r["split"], r["loss"]) for r in read_metrics(tmp_path / run / "metrics.csv")]

    straight, again = rows("straight"), rows("resumed")
    assert [r[:2] for r in again] == [r[:2] for r in straight]  # steps 5-6 replaced, not appended; one step-0 eval
    assert [r[2] for r in again] == pytest.approx([r[2] for r in straight], abs=1e-5)
    assert straight[1][2] != pytest.approx(straight[-1][2], abs=1e-2)  # it trained: the comparison is not vacuous
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("straight", "resumed")]
    assert summaries[1]["initial_eval_loss"] == pytest.approx(summaries[0]["initial_eval_loss"])
    # config.yaml keeps the device as asked (a copy runs on any machine); summary.json says where the run went
    saved = yaml.safe_load((tmp_path / "resumed" / "config.yaml").read_text())
    assert saved["train"]["device"] == "auto" and summaries[1]["device"] == "cpu"
    assert load_train_config(tmp_path / "resumed" / "config.yaml").train.device == "auto"
    assert summaries[1]["best_eval_loss"] == pytest.approx(summaries[0]["best_eval_loss"], abs=1e-5)


def test_oid_train_with_init_scratch_is_oid_pretrain(tmp_path):
    """One driver chosen by settings: the scratch recipe through `oid train` and through `oid pretrain` (which
    adds model.init=scratch, here to a recipe without it) give the same run, loss for loss."""
    from typer.testing import CliRunner

    from oidkit.cli import app
    from oidkit.core.runs import read_metrics

    recipe = counting_recipe(tmp_path)
    without_init = yaml.safe_load(recipe.read_text())
    del without_init["model"]["init"]
    (tmp_path / "no_init.yaml").write_text(yaml.safe_dump(without_init))
    short = ["train.max_steps=4", "train.eval_every=2", "train.threads=1"]
    runs = {"train": ["train", str(recipe)], "pretrain": ["pretrain", str(tmp_path / "no_init.yaml")]}
    for name, command in runs.items():
        result = CliRunner().invoke(app, [*command, *short, f"train.output_dir={tmp_path / name}"])
        assert result.exit_code == 0, result.output
        assert "parameters; train loss" in result.output.replace("\n", " ")

    def rows(run: str) -> list[tuple]:
        metrics = read_metrics(tmp_path / run / "metrics.csv")
        return [(r["step"], r["split"], r["loss"], r["lr"], r["tokens"]) for r in metrics]

    assert len(rows("train")) == 4 + 3  # four steps, evaluations at steps 0, 2 and 4
    assert rows("train") == rows("pretrain")
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in runs]
    for summary in summaries:
        summary.pop("model")
    assert summaries[0] == summaries[1]
    assert (tmp_path / "train" / "final" / "model.safetensors").read_bytes() == \
        (tmp_path / "pretrain" / "final" / "model.safetensors").read_bytes()


def test_oid_export_of_a_scratch_run_folder_writes_a_loadable_model_with_its_card(tmp_path):
    """A run from scratch names its weights final/ (and best/ only with validation) and has no base model."""
    from transformers import AutoModelForCausalLM
    from typer.testing import CliRunner

    from oidkit.cli import app

    recipe = counting_recipe(tmp_path)
    run_training(load_train_config(recipe, ["train.max_steps=2", "train.threads=1", "data.val_fraction=0",
                                                      "train.eval_every=0"]))
    assert not (tmp_path / "run" / "best").exists() and (tmp_path / "run" / "final").is_dir()
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    assert all(torch.equal(a, b) for a, b in zip(exported.state_dict().values(), trained.state_dict().values(),
                                                     strict=True))
    card = (tmp_path / "model" / "README.md").read_text()
    assert "trained from scratch" in card and "pretraining" in card and "base_model:" not in card
    assert f"| tokenizer | {tmp_path / 'tok'} |" in card and "every token" in card
