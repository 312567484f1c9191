"""``oid export``'s model card: YAML metadata that huggingface_hub reads, base_model a hub id, never a local path."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.errors import ConfigError
from oidkit.io import write_jsonl
from oidkit.models.card import model_card
from oidkit.models.export import export_run
from oidkit.models.registry import cached_model_dir, hub_id


def test_hub_id_of_aliases_cached_folders_hub_downloads_and_ids_but_never_a_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("OIDKIT_CACHE", str(tmp_path / "cache"))
    assert hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    cached_model_dir("smollm2-135m-instruct").mkdir(parents=True)
    assert hub_id(cached_model_dir("smollm2-135m-instruct")) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    download = tmp_path / "hub" / "models--Qwen--Qwen2.5-0.5B-Instruct" / "snapshots" / "abc123"
    download.mkdir(parents=True)
    assert hub_id(download) == "Qwen/Qwen2.5-0.5B-Instruct"
    assert hub_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    local = tmp_path / "org" / "model"
    local.mkdir(parents=True)
    assert hub_id(local) is None and hub_id("my-model") is None and hub_id("/abs/org/name") is None


@pytest.fixture(scope="module")
def trained_run(tiny_model_path, tmp_path_factory):
    """A 2-step LoRA run of the tiny model on records that have a data card beside them."""
    from oidkit.train.config import load_train_config
    from oidkit.train.run import run_training

    root = tmp_path_factory.mktemp("card")
    data = root / "curated" / "train.jsonl"
    data.parent.mkdir()
    write_jsonl(data, [{"id": str(i), "messages": [{"role": "user", "content": f"{i} + {i}?"},
                                                   {"role": "assistant", "content": str(2 * i)}]} for i in range(8)])
    (data.parent / "README.md").write_text("---\npretty_name: Arithmetic SFT\nlicense: cc-by-4.0\n---\n# Arithmetic\n")
    run_training(load_train_config(None, [
        f"model.name={tiny_model_path}", f"data.train={data}", "train.max_steps=2", f"train.output_dir={root / 'run'}",
        f"data.cache_dir={root / 'cache'}", "data.max_seq_len=64", "train.batch_size=2", "train.threads=1"]))
    return root / "run"


@pytest.fixture
def eval_report(tmp_path):
    """An ``oid eval --compare`` report.json (the shape evaluate.run.write_report writes)."""
    path = tmp_path / "eval" / "report.json"
    path.parent.mkdir()
    metrics = {"base": {"loss": 2.5, "chrf": 10.0}, "tuned": {"loss": 1.25, "chrf": 31.5}}
    path.write_text(json.dumps({"models": ["base", "tuned"], "results": {
        m: {"heldout.jsonl": {"kind": "records", "metrics": metrics[m], "examples": []}} for m in metrics}}))
    return path


def test_merged_export_card_loads_with_the_data_card_settings_and_eval_table(trained_run, tmp_path, eval_report):
    result = CliRunner().invoke(app, ["export", str(trained_run), str(tmp_path / "model"), "--eval-report",
                                      str(eval_report.parent), "--base-model", "HuggingFaceTB/SmolLM2-135M-Instruct"])
    assert result.exit_code == 0, result.output
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "transformers" and card.data.datasets == ["Arithmetic SFT"]
    assert "| loss | 2.5000 | 1.2500 |" in card.text and "| chrf | 10.0000 | 31.5000 |" in card.text
    assert "r=8, alpha=16.0" in card.text and "2 of max 2" in card.text and "cc-by-4.0" in card.text


def test_a_local_base_model_is_never_written_as_base_model(trained_run, tmp_path, tiny_model_path):
    out = export_run(trained_run, tmp_path / "model", which="last")
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model is None and str(tiny_model_path) not in yaml.safe_dump(card.data.to_dict())
    assert "--base-model ORG/NAME" in card.text


@pytest.mark.parametrize("merge", [True, False])
def test_exporting_again_into_the_same_folder_replaces_it_card_and_files_included(trained_run, tmp_path, merge):
    """The card and extra files (an application's prompt) are part of the published folder, so a second export
    there (``make demo`` twice, an app run again) replaces it instead of refusing the card as a foreign file."""
    files = {"oidkit_app.json": '{"app": "translate", "system_prompt": "Translate."}'}
    export_run(trained_run, tmp_path / "model", which="last", merge=merge, files=files)
    out = export_run(trained_run, tmp_path / "model", which="last", merge=merge, files=files)
    assert (out / "oidkit_app.json").read_text() == files["oidkit_app.json"]
    assert ModelCard.load(out / "README.md").data.library_name == ("transformers" if merge else "peft")
    (out / "notes.txt").write_text("mine")  # a file the export does not write is still never deleted
    with pytest.raises(ConfigError, match=r"holds files the command does not write \(notes.txt"):
        export_run(trained_run, tmp_path / "model", which="last", merge=merge)


def test_adapter_folder_gets_the_card_instead_of_peft_placeholder(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["name"] = "smollm2-135m-instruct"  # as if trained from the alias: registry knows hub id, license
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert "[More Information Needed]" in (run / "last" / "README.md").read_text()  # peft's placeholder
    out = export_run(run, tmp_path / "adapter", which="last", merge=False)
    text = (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    assert "[More Information Needed]" not in text and (out / "adapter_config.json").exists()
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.library_name == "peft"
    assert card.data.license == "apache-2.0" and "AutoPeftModelForCausalLM" in card.text


def test_a_bad_eval_report_fails_before_anything_is_written(trained_run, tmp_path):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"bad.json: not an `oid eval` report.json"):
        export_run(trained_run, tmp_path / "model", eval_report=tmp_path / "bad.json")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ConfigError, match="not an `oid eval`"):
        model_card(trained_run, tmp_path / "m", adapter=False, eval_report=tmp_path / "missing")
