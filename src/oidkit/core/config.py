"""Config files: YAML recipes (packaged or on disk), ``key=value`` overrides (torchtune style), validation errors.

Recipes ship inside the package (``src/oidkit/recipes/``): ``default`` (curation), ``train_demo`` (LoRA
fine-tuning), ``pretrain_tiny``. Every command that takes a recipe or config file also takes one of these names,
so an installed oidkit runs ``oid curate default input=data.jsonl output=out`` without a checkout. In the
repository ``recipes/`` links there.

``oid curate`` (recipes with steps addressed by name), ``oid train`` / ``oid pretrain`` (sectioned configs) and
``oid eval`` / ``oid synth`` / ``oid annotate`` (flat settings named like their flags) read, override and validate
through :func:`load_config`; each gives its own schema and, for curate, its own override (``apply``: a step by
name or index, ``input=x`` shorthands) built on :func:`split_override` and :func:`set_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from oidkit.errors import ConfigError

PACKAGED = Path(__file__).parent.parent / "recipes"
Schema = TypeVar("Schema", bound=BaseModel)


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


def split_override(override: str, example: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> ``(["a", "b", "c"], value)``, the value parsed as YAML (numbers, lists, booleans)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not key=value; example: {example}")
    return key.strip().split("."), yaml.safe_load(raw)


def set_key(tree: dict, parts: list[str], value: Any, override: str, *, descend: Callable | None = None) -> None:
    """Set ``tree[parts[0]][parts[1]]... = value``, creating sections; list items by index.

    ``descend(node, part)`` may rewrite ``node[part]`` before descending (curate's ``input=x`` shorthand).
    """
    if not parts or not parts[-1]:
        raise ConfigError(f"override {override!r} does not name a key")
    node: Any = tree
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            if descend is not None:
                descend(node, part)
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override {override!r}: {part!r} is inside a value, not a section")
    if not isinstance(node, dict):
        raise ConfigError(f"override {override!r}: {parts[-2] if len(parts) > 1 else parts[0]!r} is a value, "
                          "not a section")
    node[parts[-1]] = value


def validation_problems(error: ValidationError) -> list[str]:
    """One ``dotted.key: message (got value)`` line per problem pydantic found, e.g.
    ``limit: Input should be greater than or equal to 1 (got -3)``.

    Location parts holding ``=`` are the tags of sections chosen by a setting (``init=scratch``), not keys. The
    value is left out for a missing key and for a whole section (pydantic gives the section as the input).
    """
    def key(loc: tuple) -> str:
        return ".".join(str(part) for part in loc if "=" not in str(part)) or "config"

    def got(err: dict) -> str:
        if err["type"] == "missing" or isinstance(err["input"], dict):
            return ""
        value = repr(err["input"])
        return f" (got {value if len(value) <= 80 else value[:77] + '...'})"  # a long list stays one line

    return [f"{key(err['loc'])}: {err['msg']}{got(err)}" for err in error.errors()]


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...], schema: type[Schema], *,
                label: str, base: dict[str, Any] | None = None, example: str = "optim.lr=1e-4",
                apply: Callable[[dict, str], None] | None = None, hint: str = "",
                given: dict[str, Any] | None = None) -> Schema:
    """``base`` < the YAML config at ``path`` < ``key=value`` overrides < ``given``, validated against ``schema``.

    ``base`` holds defaults the file's top-level keys replace (e.g. a command's flag defaults); ``given`` the
    flags the user typed, which win over everything. ``apply(tree, override)`` replaces the plain dotted-key
    override (curate addresses steps by name); every problem pydantic finds is listed in one ConfigError, with
    ``hint`` after them.
    """
    tree: dict[str, Any] = {**(base or {}), **(read_recipe(path) if path is not None else {})}
    for override in overrides:
        if apply is not None:
            apply(tree, override)
        else:
            set_key(tree, *split_override(override, example), override)
    tree.update(given or {})
    try:
        return schema.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(f"{path or 'config'}: invalid {label}:\n  " + "\n  ".join(validation_problems(e)) +
                          (f"\n  ({hint})" if hint else "")) from None
