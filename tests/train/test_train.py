"""Training: config validation, schedules, exact resume, evaluation and early stopping, export, data parallel."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from oidkit.core.runs import read_metrics
from oidkit.errors import ConfigError
from oidkit.io import write_jsonl
from oidkit.models.export import export_merged
from oidkit.models.loading import quiet_peft
from oidkit.train.config import load_train_config
from oidkit.train.optim import build_optimizer, lr_multiplier
from oidkit.train.run import run_training


@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    """Arithmetic conversations: 48 short, learnable records."""
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    write_jsonl(path, [{"id": str(i), "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": f"What is {i} plus {i}?"},
        {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(48)])
    return path


def tiny_config(model_path, data_path, out_dir, *overrides: str):
    base = [f"model.name={model_path}", f"data.train={data_path}", f"data.cache_dir={out_dir.parent / 'cache'}",
            f"train.output_dir={out_dir}", "data.max_seq_len=128", "train.batch_size=2", "optim.lr=3e-3",
            "optim.warmup_steps=2", "lora.dropout=0.1", "train.threads=1"]
    return load_train_config(None, [*base, *overrides])


def test_config_overrides_and_validation_messages(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: m}\ndata: {train: d.jsonl}\ntrain: {output_dir: out}\n")
    config = load_train_config(path, ["optim.lr=1e-4", "lora.target_modules=[q_proj, v_proj]", "method=full"])
    assert config.optim.lr == 1e-4 and config.lora.target_modules == ["q_proj", "v_proj"] and config.method == "full"
    with pytest.raises(ConfigError, match=r"optim.lrr: Extra inputs are not permitted"):
        load_train_config(path, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"train.batch_size: Input should be greater than 0"):
        load_train_config(path, ["train.batch_size=0"])
    with pytest.raises(ConfigError, match=r"need data\.validation or data\.val_fraction"):
        load_train_config(path, ["train.eval_every=5"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_train_config(path, ["optim.lr"])


def test_model_init_chooses_fine_tuning_or_scratch_and_the_settings_must_agree(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: m}\ndata: {train: d.jsonl}\ntrain: {output_dir: out}\n")
    tuned = load_train_config(path)
    assert (tuned.model.init, tuned.data.kind, tuned.method, tuned.optim.lr) == ("pretrained", "chat", "lora", 2e-4)
    scratch_keys = ["model.init=scratch", "model.dim=64", "tokenizer=tok", "data.train=[c.txt]"]
    scratch = load_train_config(path, ["model={}", *scratch_keys])
    assert (scratch.model.dim, scratch.data.kind, scratch.method) == (64, "text", "full")
    assert (scratch.optim.lr, scratch.optim.warmup_steps, scratch.data.val_fraction) == (3e-3, 20, 0.05)
    assert load_train_config(path, ["model={}", *scratch_keys, "optim.lr=1e-3"]).optim.lr == 1e-3
    with pytest.raises(ConfigError, match=r"\n  model\.dimm: Extra inputs"):  # the key, not the section's tag
        load_train_config(path, ["model={}", *scratch_keys, "model.dimm=3"])
    with pytest.raises(ConfigError, match="model: init must be pretrained or scratch"):
        load_train_config(path, ["model.init=new"])
    with pytest.raises(ConfigError, match=r"init=scratch with data\.kind=chat"):
        load_train_config(path, ["model={}", *scratch_keys, "data.kind=chat"])
    with pytest.raises(ConfigError, match="method must be full"):
        load_train_config(path, ["model={}", *scratch_keys, "method=lora"])
    with pytest.raises(ConfigError, match="needs tokenizer"):
        load_train_config(path, ["model={}", *scratch_keys, "tokenizer=null"])
    with pytest.raises(ConfigError, match=r"tokenizer is for model\.init=scratch"):
        load_train_config(path, ["tokenizer=tok"])


def test_schedules_warm_up_then_decay_to_the_floor():
    cosine = [lr_multiplier(s, total_steps=10, warmup_steps=2, min_ratio=0.1) for s in range(11)]
    assert cosine[:2] == pytest.approx([1 / 3, 2 / 3])
    assert cosine[2] == pytest.approx(1.0) and cosine[10] == pytest.approx(0.1)
    assert cosine[6] == pytest.approx(0.55)  # half way through the decay: the mean of 1 and 0.1
    assert lr_multiplier(6, total_steps=10, warmup_steps=2, schedule="linear", min_ratio=0.0) == pytest.approx(0.5)
    assert lr_multiplier(9, total_steps=10, schedule="constant") == 1.0



def test_optimizer_is_fused_and_steps_like_the_multi_tensor_adamw():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))
    reference = torch.nn.Sequential(*(type(m)(*m.normalized_shape) if isinstance(m, torch.nn.LayerNorm)
                                      else torch.nn.Linear(m.in_features, m.out_features) for m in model))
    reference.load_state_dict(model.state_dict())
    start = [p.detach().clone() for p in model.parameters()]
    ours = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    assert all(group["fused"] for group in ours.param_groups)
    foreach = torch.optim.AdamW([{"params": [p for p in reference.parameters() if p.ndim >= 2], "weight_decay": 0.1},
                                 {"params": [p for p in reference.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                                lr=1e-2, betas=(0.9, 0.95), foreach=True)
    x = torch.randn(32, 8)
    for _ in range(5):
        for net, optimizer in ((model, ours), (reference, foreach)):
            net(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    for fused_p, foreach_p, before in zip(model.parameters(), reference.parameters(), start, strict=True):
        torch.testing.assert_close(fused_p, foreach_p, rtol=1e-5, atol=1e-6)
        assert not torch.equal(fused_p, before)  # the optimizer did move it


def train_losses(run_dir) -> list[float]:
    return [row["loss"] for row in read_metrics(run_dir / "metrics.csv") if row["split"] == "train"]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_model_path, records_file, tmp_path, precision,
                                                            monkeypatch):
    if precision == "fp16":
        # A loss scale that doubles every step and halves on overflow (the tiny model overflows at 2**20): the
        # steps it skips depend on the scale, so a resume that forgot the scale skips other steps (it fails so).
        monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0**19,
                                                                       growth_interval=1))
    run_training(tiny_config(tiny_model_path, records_file, tmp_path / "straight", "train.max_steps=6",
                             f"train.precision={precision}"))
    config = tiny_config(tiny_model_path, records_file, tmp_path / "resumed", "train.max_steps=6", "train.save_every=3",
                         f"train.precision={precision}")
    run_training(config)
    # Interrupted after the step-3 checkpoint: later checkpoints never happened.
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-000006")
    summary = run_training(config, resume=True)
    assert summary["steps"] == 6
    resumed = train_losses(tmp_path / "resumed")
    assert len(resumed) == 6  # steps 4-6 of the first attempt were replaced, not appended
    assert resumed == pytest.approx(train_losses(tmp_path / "straight"), abs=1e-5)
    assert resumed[0] != pytest.approx(resumed[-1], abs=1e-3)  # it trained: the comparison is not vacuous
    if precision == "fp32":  # the files read the same, kept rows included (step 1, not 1.0), timings aside
        assert metrics_text(tmp_path / "resumed") == metrics_text(tmp_path / "straight")
        assert metrics_text(tmp_path / "resumed")[1].startswith("1,train,")


def metrics_text(run_dir) -> list[str]:
    """The lines of metrics.csv without the timing columns (tokens_per_s, elapsed_s)."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    drop = {lines[0].split(",").index(name) for name in ("tokens_per_s", "elapsed_s")}
    return [",".join(v for i, v in enumerate(line.split(",")) if i not in drop) for line in lines]


def test_lora_run_learns_evaluates_and_exports_a_plain_transformers_model(tiny_model_path, records_file, tmp_path):
    run_dir = tmp_path / "run"
    summary = run_training(tiny_config(tiny_model_path, records_file, run_dir, "train.max_steps=12",
                                       "data.val_fraction=0.25", "train.eval_every=4", "optim.lr=1e-2"))
    losses = train_losses(run_dir)
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    evals = [r["loss"] for r in read_metrics(run_dir / "metrics.csv") if r["split"] == "eval"]
    assert len(evals) == 4 and summary["best_eval_loss"] == pytest.approx(min(evals))  # steps 0, 4, 8, 12
    assert summary["data"]["train_examples"] == 36 and summary["data"]["eval_examples"] == 12
    for name in ("config.yaml", "data.json", "loss.png", "summary.json", "last/adapter_model.safetensors",
                 "best/adapter_model.safetensors", "last/tokenizer.json"):
        assert (run_dir / name).exists(), name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = export_merged(run_dir, tmp_path / "merged", which="last")
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]  # peft's noise, hidden
    # plain transformers, in a fresh interpreter that never imports oidkit or peft
    script = (f"from transformers import AutoModelForCausalLM, AutoTokenizer; import sys\n"
              f"m = AutoModelForCausalLM.from_pretrained({str(out)!r})\n"
              f"t = AutoTokenizer.from_pretrained({str(out)!r})\n"
              "p = t.apply_chat_template([{'role': 'user', 'content': 'What is 3 plus 3?'}],"
              " add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
              "o = m.generate(**p, max_new_tokens=5, do_sample=False)\n"
              "assert 'peft' not in sys.modules and 'oidkit' not in sys.modules\n"
              "print(o.shape[1] - p['input_ids'].shape[1])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(result.stdout.strip().splitlines()[-1]) > 0

    # the merged weights compute what base + adapter compute
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 17, 42, 9]])
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    with quiet_peft():
        adapted = PeftModel.from_pretrained(base, run_dir / "last").eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)


def test_full_fine_tuning_with_early_stopping_keeps_the_best_weights(tiny_model_path, records_file, tmp_path):
    run_dir = tmp_path / "full"
    # A huge learning rate makes the validation loss worse after the first evaluation: early stopping fires.
    summary = run_training(tiny_config(tiny_model_path, records_file, run_dir, "method=full", "train.max_steps=40",
                                       "data.val_fraction=0.25", "train.eval_every=1", "optim.lr=0.5",
                                       "optim.warmup_steps=0", "optim.schedule=constant",
                                       "train.early_stopping_patience=2"))
    assert summary["stopped_early"] and summary["steps"] < 40
    assert (run_dir / "best" / "model.safetensors").exists() and (run_dir / "last" / "model.safetensors").exists()
    evals = [r["loss"] for r in read_metrics(run_dir / "metrics.csv") if r["split"] == "eval"]
    assert min(evals) == pytest.approx(summary["best_eval_loss"]) and evals[-1] > min(evals)


@pytest.mark.slow
def test_two_processes_stay_in_sync_on_different_shards(tiny_model_path, records_file, tmp_path):
    from oidkit.train.config import save_config

    config = tiny_config(tiny_model_path, records_file, tmp_path / "ddp", "train.max_steps=3", "method=full")
    save_config(config, tmp_path / "ddp.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "oidkit.train", str(tmp_path / "ddp.yaml")]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ranks = json.loads((tmp_path / "ddp" / "summary.json").read_text())["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["param_checksum"] == pytest.approx(ranks[1]["param_checksum"], rel=1e-9)
    assert not set(ranks[0]["first_rows"]) & set(ranks[1]["first_rows"])


def test_bf16_autocast_trains_with_finite_losses(tiny_model_path, records_file, tmp_path):
    summary = run_training(tiny_config(tiny_model_path, records_file, tmp_path / "bf16", "train.max_steps=2",
                                       "train.precision=bf16", "data.packing=false"))
    losses = train_losses(tmp_path / "bf16")
    assert summary["steps"] == 2 and all(0 < loss < 20 for loss in losses)


def test_cli_train_then_export(tiny_model_path, records_file, tmp_path):
    from typer.testing import CliRunner

    from oidkit.cli import app

    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: {{name: {tiny_model_path}}}\ndata: {{train: {records_file}, max_seq_len: 128}}\n"
                      f"train: {{output_dir: {tmp_path / 'run'}, batch_size: 2, threads: 1}}\n")
    result = CliRunner().invoke(app, ["train", str(config), "train.max_steps=2", f"data.cache_dir={tmp_path / 'c'}"])
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and "tokenisation cache miss" in result.output
    result = CliRunner().invoke(app, ["export", "--merge", str(tmp_path / "run"), str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "model" / "tokenizer.json").exists()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_our_llama_trains_like_transformers_and_saves_what_transformers_loads(tiny_model_path, records_file, tmp_path,
                                                                              method):
    from safetensors.torch import load_file

    for impl in ("transformers", "oidkit"):
        run_training(tiny_config(tiny_model_path, records_file, tmp_path / impl, f"model.impl={impl}",
                                 f"method={method}", "train.max_steps=4", "optim.lr=1e-2"))
    ours, theirs = train_losses(tmp_path / "oidkit"), train_losses(tmp_path / "transformers")
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert ours[0] != pytest.approx(ours[-1], abs=1e-3)  # it trained: the comparison is not vacuous

    # Same tensor names and values as the transformers run: export, eval and serve cannot tell them apart.
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    saved = {impl: load_file(tmp_path / impl / "last" / weights) for impl in ("transformers", "oidkit")}
    assert sorted(saved["oidkit"]) == sorted(saved["transformers"])
    for name, tensor in saved["transformers"].items():
        assert torch.allclose(saved["oidkit"][name], tensor, atol=1e-4), name
    if method == "lora":
        configs = [json.loads((tmp_path / impl / "last" / "adapter_config.json").read_text())
                   for impl in ("transformers", "oidkit")]
        assert sorted(configs[1]["target_modules"]) == sorted(configs[0]["target_modules"])

    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(export_merged(tmp_path / "oidkit", tmp_path / "merged")).eval()
    ids = torch.tensor([[5, 17, 42, 9]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, AutoModelForCausalLM.from_pretrained(tiny_model_path)(ids).logits)


def test_our_llama_rejects_lora_targets_it_does_not_have(tiny_model_path, records_file, tmp_path):
    with pytest.raises(ConfigError, match=r"\['qkv_proj'\] name no linear layer of our Llama; use any of"):
        run_training(tiny_config(tiny_model_path, records_file, tmp_path / "a", "model.impl=oidkit",
                                 "lora.target_modules=[q_proj, qkv_proj]"))
    with pytest.raises(ConfigError, match="give a list of names"):
        run_training(tiny_config(tiny_model_path, records_file, tmp_path / "b", "model.impl=oidkit",
                                 "lora.target_modules=.*proj"))


@pytest.mark.real
def test_our_llama_fine_tunes_smollm2_like_transformers(smollm2_model_dir, records_file, tmp_path):
    losses = {}
    for impl in ("transformers", "oidkit"):
        run_training(tiny_config(smollm2_model_dir, records_file, tmp_path / impl, f"model.impl={impl}",
                                 "train.max_steps=2", "train.batch_size=1", "data.max_examples=8", "optim.lr=1e-3"))
        losses[impl] = train_losses(tmp_path / impl)
    assert losses["oidkit"] == pytest.approx(losses["transformers"], abs=1e-4)
    assert losses["oidkit"][0] != pytest.approx(losses["oidkit"][1], abs=1e-3)


def test_lora_wrapping_does_not_show_users_peft_s_deprecation_warning(tiny_model_path, tmp_path):
    """peft reads transformers' deprecated `is_gradient_checkpointing`: every LoRA run printed a FutureWarning."""
    from transformers import AutoModelForCausalLM

    from oidkit.train.finetune import apply_method

    config = load_train_config(None, [f"model.name={tiny_model_path}", "data.train=unused.jsonl",
                                      f"train.output_dir={tmp_path}", "method=lora"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_path), config)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
