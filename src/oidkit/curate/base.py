"""The three shapes of a curation operator, and the registry recipes and ``oid ops`` look them up in.

An operator is a pydantic config plus a small class; it never knows which engine runs it, and it keeps
no counters of its own (the runner counts, times, writes rejects and checkpoints):

- :class:`Filter` decides per record: ``keep(record) -> (keep, reason, value)``; one that sets ``stamp``
  writes the value of a kept record to ``meta[stamp]``.
- :class:`Mapper` rewrites records: ``map(record) -> (record, counts)``; it returns a *new* dict when it
  changed something (the runner counts ``modified`` by identity) and optional per-type counts for stats.
- :class:`GlobalOp` needs to see every record (dedup, mixing, splitting): ``keys(batch)`` computes a small
  key per record (parallelisable: it runs inside Ray ``map_batches``), ``resolve(keys, ids)`` sees all
  keys at once and returns a :class:`Decision` per position it drops or annotates.

Heavy state (models, benchmark indexes) is built in ``setup()``, which each engine calls once per
worker, so configs stay cheap to validate and to pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class OpConfig(BaseModel):
    """Base of every operator config: unknown parameters are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass
class Decision:
    """What a global operator decided for one record: drop it (with why) or merge ``meta`` into it."""

    reason: str | None = None
    value: Any = None
    detail: str = ""
    duplicate_of: str | None = None
    meta: dict = field(default_factory=dict)


class Operator:
    """Common part: the registry name, the config class, one-line help and the reason codes it emits."""

    name: ClassVar[str]
    kind: ClassVar[str]
    Config: ClassVar[type[OpConfig]] = OpConfig
    reasons: ClassVar[dict[str, str]] = {}

    def __init__(self, config: OpConfig):
        self.config = config
        self.notes: list[str] = []
        """What the step could not do, one line each (e.g. a benchmark file not found): printed by
        ``oid curate``, kept in ``stats.json`` and shown in the report's curation section."""

    def setup(self) -> None:
        """Build heavy state (indexes, models); called once per worker before the first batch."""


class Filter(Operator):
    kind = "filter"
    stamp: ClassVar[str | None] = None
    """When set, the value ``keep`` returns for a kept record (unless None) is written to ``meta[stamp]``:
    what a filter measured to decide (e.g. the language) travels with the record."""

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        """``(True, "", None)`` to keep (or ``(True, "", value)`` with ``stamp``), else
        ``(False, reason code, measured value)``."""
        raise NotImplementedError

    def keep_batch(self, records: list[dict]) -> list[tuple[bool, str, Any]]:
        """Override when a batch is cheaper than its records one by one (e.g. a model)."""
        return [self.keep(r) for r in records]


class Mapper(Operator):
    kind = "mapper"

    def map(self, record: dict) -> tuple[dict, dict[str, int]]:
        """The record (a new dict if changed, the same object if not) and counts of what was changed."""
        raise NotImplementedError


class GlobalOp(Operator):
    kind = "global"

    def keys(self, records: list[dict]) -> list[Any]:
        """One small picklable key per record (a hash, a signature, a source name)."""
        raise NotImplementedError

    def resolve(self, keys: list[Any], ids: list[str]) -> dict[int, Decision]:
        """Decisions by position in input order; positions left out are kept unchanged."""
        raise NotImplementedError


REGISTRY: dict[str, type[Operator]] = {}


def register(cls: type[Operator]) -> type[Operator]:
    """Class decorator: make an operator available to recipes and ``oid ops`` under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls
