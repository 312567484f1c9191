"""Recipes that ship with oidkit: ``default`` (curation), ``train_demo`` (LoRA fine-tuning), ``pretrain_tiny``.

Every command that takes a recipe or config file also takes one of these names, so an installed oidkit runs
``oid curate default input=data.jsonl output=out`` without a checkout. In the repository ``recipes/`` links
here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from oidkit.errors import ConfigError

PACKAGED = Path(__file__).parent


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped in this package."""
    return sorted(p.stem for p in PACKAGED.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file as given, or the packaged recipe of that name (``default`` or ``default.yaml``).

    A path that exists wins; a name that is neither gives back the path unchanged, so the caller reports
    it as missing (with ``packaged_recipes()`` in the message).
    """
    path = Path(name_or_path).expanduser()
    if path.exists() or path.parent != Path("."):
        return path
    packaged = PACKAGED / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    return packaged if packaged.exists() else path


def read_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """The YAML mapping of a recipe or config file (``recipe_path`` resolves packaged names)."""
    try:
        data = yaml.safe_load(recipe_path(name_or_path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{name_or_path}: file not found; packaged recipes: {', '.join(packaged_recipes())}"
                          ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{name_or_path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name_or_path}: expected a mapping of keys to values, found {type(data).__name__}")
    return data
