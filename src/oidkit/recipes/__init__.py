"""Recipes that ship with oidkit: ``default`` (curation), ``train_demo`` (LoRA fine-tuning), ``pretrain_tiny``.

Every command that takes a recipe or config file also takes one of these names, so an installed oidkit runs
``oid curate default input=data.jsonl output=out`` without a checkout. In the repository ``recipes/`` links
here.
"""

from __future__ import annotations

from pathlib import Path

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
