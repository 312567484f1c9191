"""Packaged recipes: an installed oidkit runs `oid curate default ...` without a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from oidkit.core.config import packaged_recipes
from oidkit.curate.recipe import load_recipe
from oidkit.errors import ConfigError
from oidkit.train.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]


def test_recipes_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here
    assert packaged_recipes() == ["default", "pretrain_tiny", "train_demo"]
    recipe = load_recipe("default", ["input=data.jsonl", "output=out"])
    assert [step.op for step in recipe.steps][:3] == ["normalise", "heuristics", "language"]
    assert load_train_config("train_demo.yaml").method == "lora"
    scratch = load_train_config("pretrain_tiny")
    assert (scratch.model.init, scratch.data.kind, scratch.method) == ("scratch", "text", "full")
    assert scratch.model.n_layers == 4
    with pytest.raises(ConfigError, match="packaged recipes: default, pretrain_tiny, train_demo"):
        load_recipe("defualt")
    with pytest.raises(ConfigError, match="packaged recipes: default, pretrain_tiny, train_demo"):
        load_train_config("configs/train_demo.yaml")  # a path is never swapped for a packaged recipe


def test_a_local_file_wins_over_the_packaged_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.yaml").write_text("input: mine.jsonl\noutput: out\nsteps: [{op: pii}]\n")
    assert [step.op for step in load_recipe("default.yaml").steps] == ["pii"]


@pytest.mark.slow
def test_the_wheel_ships_the_recipes(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("oidkit-*.whl"))).namelist()
    assert {f"oidkit/recipes/{name}.yaml" for name in packaged_recipes()} <= set(names)
