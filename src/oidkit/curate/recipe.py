"""The curation recipe: one YAML file naming the input, the output, the engine and the steps.

    input: demo-out/sharegpt.jsonl          # or {paths: [...], format: sharegpt, salvage: true}
    output: demo-out/curated                # or {path: ..., format: parquet, shard_size: 50000}
    engine: local                           # or ray
    steps:
      - op: normalise
      - op: heuristics
        min_chars: 50
      - {op: near_dedup, name: near_dedup_instructions, field: instruction}

The whole recipe is validated (unknown operators, unknown or bad parameters) before any work starts, and
``key=value`` overrides from the command line (torchtune style) apply first: ``output=out2``,
``engine=ray``, ``heuristics.min_chars=100`` (a step by name) or ``steps.1.min_chars=100`` (by index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from oidkit.core.config import load_config, set_key, split_override
from oidkit.curate.base import OpConfig, Operator
from oidkit.curate.ops import operator_class
from oidkit.errors import ConfigError


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str]
    format: str | None = None
    salvage: bool = False
    columns: str | dict | None = None  # a column mapping, as `oid convert --columns` (io.mapping)
    field: str | None = None
    python_literals: bool = False


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    format: Literal["jsonl", "parquet"] = "jsonl"
    shard_size: int | None = None


class Step(BaseModel):
    """One step as written: ``op``, an optional ``name`` label, and the operator's parameters."""

    model_config = ConfigDict(extra="allow")
    op: str
    name: str | None = None

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


SHORTHANDS = {"input": lambda value: {"paths": [value] if isinstance(value, str) else value},
              "output": lambda value: {"path": value}}


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: InputSpec
    output: OutputSpec
    engine: Literal["local", "ray"] = "local"
    batch_size: int = 1000
    steps: list[Step]

    @field_validator("input", "output", mode="before")
    @classmethod
    def _shorthand(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, (str, list)):
            return SHORTHANDS[info.field_name](value)
        if isinstance(value, dict) and isinstance(value.get("paths"), str):
            return {**value, "paths": [value["paths"]]}
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Recipe:
        seen: dict[str, int] = {}
        for step in self.steps:
            base = step.name or step.op
            seen[base] = seen.get(base, 0) + 1
            step.name = base if seen[base] == 1 else f"{base}_{seen[base]}"
        return self


def build_operators(recipe: Recipe) -> list[tuple[str, Operator]]:
    """Each step's name and operator instance; one ConfigError listing every bad step and parameter."""
    built, problems = [], []
    for i, step in enumerate(recipe.steps):
        try:
            cls = operator_class(step.op)
        except ConfigError as e:
            problems.append(f"step {i} ({step.name}): {e}")
            continue
        try:
            config: OpConfig = cls.Config(**step.params())
        except ValidationError as e:
            valid = ", ".join(cls.Config.model_fields)
            for error in e.errors():
                where = ".".join(str(p) for p in error["loc"]) or "parameters"
                problems.append(f"step {i} ({step.name}, op {step.op}): {where}: {error['msg']} "
                                f"(got {error.get('input')!r}; parameters of {step.op}: {valid})")
            continue
        built.append((step.name, cls(config)))
    if problems:
        raise ConfigError("invalid recipe:\n  " + "\n  ".join(problems))
    return built


def apply_override(data: dict, override: str) -> None:
    """Apply ``key.path=value`` (value parsed as YAML) to the raw recipe dict; steps by name or index."""
    parts, value = split_override(override, "output=out2 or heuristics.min_chars=100")
    steps = data.get("steps") or []
    by_name = {s.get("name") or s.get("op"): s for s in steps if isinstance(s, dict)}
    target = data
    if parts[0] not in data and parts[0] in by_name:
        target, parts = by_name[parts[0]], parts[1:]

    def expand_shorthand(node: dict, part: str) -> None:
        if part in SHORTHANDS and isinstance(node.get(part), (str, list)):
            node[part] = SHORTHANDS[part](node[part])  # input=x then input.salvage=true

    set_key(target, parts, value, override, descend=expand_shorthand)


def load_recipe(path: str | Path | None = None, overrides: list[str] = (), *, base: dict | None = None) -> Recipe:
    """Read, override and validate a recipe (from ``path`` or a ready dict); operators are checked too."""
    recipe = load_config(path, overrides, Recipe, label="recipe", base=base, apply=apply_override,
                         hint="keys: input, output, engine, batch_size, steps")
    build_operators(recipe)
    return recipe


def resolved_recipe(recipe: Recipe) -> dict:
    """The recipe with every operator default filled in: what gets copied next to the results."""
    data = recipe.model_dump(exclude={"steps"})
    data["steps"] = [{"op": step.op, "name": name, **op.config.model_dump()}
                     for step, (name, op) in zip(recipe.steps, build_operators(recipe), strict=True)]
    return data


def one_off_recipe(ops: list[str], input_path: str, output_path: str, overrides: list[str] = ()) -> Recipe:
    """A recipe running ``ops`` with their defaults on one input (``oid curate --op ... IN OUT``)."""
    return load_recipe(base={"input": input_path, "output": output_path, "steps": [{"op": op} for op in ops]},
                       overrides=overrides)
