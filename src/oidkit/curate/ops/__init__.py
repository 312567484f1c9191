"""The built-in operators and the lookup recipes and ``oid ops`` use.

Importing this package registers every built-in operator (each module's ``@register`` fills
``oidkit.curate.base.REGISTRY``), so the lookup lives here: a new operator is one module in this folder and
one name in the import below.
"""

from __future__ import annotations

from typing import Any

from oidkit.curate.base import REGISTRY, Operator
from oidkit.curate.ops import decontam, dedup, heuristics, language, mix, normalise, pii, score, semantic
from oidkit.errors import ConfigError

__all__ = ["decontam", "dedup", "describe_operators", "heuristics", "language", "mix", "normalise",
           "operator_class", "pii", "score", "semantic"]


def operator_class(name: str) -> type[Operator]:
    """The registered operator called ``name``; a ConfigError listing the valid names otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown operator {name!r}; valid operators: {', '.join(sorted(REGISTRY))} "
                          "(see `oid ops`)")
    return REGISTRY[name]


def describe_operators() -> list[dict[str, Any]]:
    """Every registered operator with its kind, help, parameters (type, default, help) and reason codes."""
    described = []
    for name, cls in sorted(REGISTRY.items()):
        params = []
        for param, info in cls.Config.model_fields.items():
            annotation = info.annotation
            kind = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
            default = "(required)" if info.is_required() else info.get_default(call_default_factory=True)
            params.append({"name": param, "type": kind, "default": default, "help": info.description or ""})
        described.append({"name": name, "kind": cls.kind, "help": (cls.__doc__ or "").strip().splitlines()[0],
                          "params": params, "reasons": cls.reasons})
    return described
