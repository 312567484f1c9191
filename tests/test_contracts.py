"""The import contracts in pyproject.toml hold, fail on a stage->stage import, and match docs/architecture.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (dev extra)")


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(ROOT / "pyproject.toml")], cwd=src, env=env,
                          capture_output=True, text=True)


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def lint_with_added_import(tmp_path, module: str, line: str) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the package whose ``module`` (a path under oidkit/) gains ``line``."""
    shutil.copytree(ROOT / "src" / "oidkit", tmp_path / "oidkit", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "oidkit" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402\n")
    return lint_imports(tmp_path)


def test_an_evaluate_module_importing_train_breaks_the_build_naming_the_rule(tmp_path):
    result = lint_with_added_import(tmp_path, "evaluate/metrics.py", "import oidkit.train")
    assert result.returncode != 0
    assert contracts()["stages"]["name"].split(" (")[0] in result.stdout.replace("\n", " ")
    assert "oidkit.evaluate.metrics -> oidkit.train" in result.stdout


def test_a_cycle_inside_a_part_breaks_the_build(tmp_path):
    result = lint_with_added_import(tmp_path, "models/gguf_convert.py", "from oidkit.models.registry import cache_root")
    assert result.returncode != 0 and "No cycles are allowed in oidkit.models" in result.stdout


def documented_layers() -> list[list[str]]:
    """The layer table of docs/architecture.md: one row per layer, top first; first cell lists its modules."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("| layer |"):].split("\n\n")[0].splitlines()[2:]
    return [re.findall(r"`(oidkit[\w.]*)`", row.split("|")[2]) for row in table]


def test_architecture_doc_shows_the_contracts_layers_and_every_module_exists():
    layers = [[name.strip() for name in re.split(r"[|:]", layer)] for layer in contracts()["layers"]["layers"]]
    assert documented_layers() == layers
    for name in (n for layer in layers for n in layer):
        path = ROOT / "src" / Path(*name.split("."))
        assert path.is_dir() or path.with_suffix(".py").exists(), name
    assert sorted(contracts()["stages"]["modules"]) == sorted(layers[2])  # the layer under cli and apps
