"""Column mappings for files whose fields no known format names, in LLaMA-Factory's ``dataset_info.json`` shape.

A mapping is given inline (``prompt=question,response=answer``), as a small YAML/JSON file beside the data
holding one entry, or as an entry of an existing ``dataset_info.json`` (``dataset_info.json#name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from oidkit.errors import InputError
from oidkit.io.formats import COLUMN_KEYS, TAG_KEYS

ENTRY_KEYS = ("columns", "tags", "formatting", "file_name", "field")
TAG_ALIASES = {"role": "role_tag", "content": "content_tag"}
EXAMPLES = ("--columns prompt=question,response=answer | --columns messages=turns,role=speaker,content=utterance,"
            "user_tag=USER,assistant_tag=SYSTEM | --columns mapping.yaml | --columns dataset_info.json#name")


def load_mapping(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """The ``dataset_info.json``-style entry (``columns``, ``tags``, ``formatting``, ``field``) ``value`` names."""
    if isinstance(value, Mapping):
        return _entry(dict(value), "the column mapping")
    file, _, name = value.partition("#")
    if Path(file).is_file():
        return _entry(_from_file(Path(file), name), file)
    if "=" not in value:
        raise InputError(f"--columns {value!r} is neither a file nor KEY=FIELD pairs", hint=f"e.g. {EXAMPLES}")
    flat = {}
    for pair in value.split(","):
        key, sep, field = (part.strip() for part in pair.partition("="))
        if not sep or not key or not field:
            raise InputError(f"--columns expects KEY=FIELD pairs separated by commas, got {pair!r}",
                             hint=f"e.g. {EXAMPLES}")
        flat[key] = field
    return _entry(flat, "--columns")


def _from_file(path: Path, name: str) -> dict:
    """One entry of a YAML/JSON file: the file itself, the entry ``name``, or the only entry it holds."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML or JSON: {e}", file=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("a column mapping file holds an object", file=str(path), hint=f"e.g. {EXAMPLES}")
    if name:
        if not isinstance(data.get(name), dict):
            raise InputError(f"no entry {name!r}; entries: {sorted(data)}", file=str(path))
        return data[name]
    if set(data) & set(ENTRY_KEYS) or set(data) & (set(COLUMN_KEYS) | set(TAG_KEYS) | set(TAG_ALIASES)):
        return data
    if len(data) == 1:
        return next(iter(data.values()))
    raise InputError(f"the file holds {len(data)} entries: name one with FILE#NAME, one of {sorted(data)}",
                     file=str(path))


def _entry(data: dict, where: str) -> dict[str, Any]:
    """Nested entries as they are; flat ``key=field`` pairs sorted into ``columns`` and ``tags``."""
    entry: dict[str, Any] = {k: data[k] for k in ENTRY_KEYS if k in data}
    flat = {k: v for k, v in data.items() if k not in ENTRY_KEYS}
    entry["columns"], entry["tags"] = dict(entry.get("columns") or {}), dict(entry.get("tags") or {})
    for key, field in flat.items():
        key = TAG_ALIASES.get(key, key)
        if key in COLUMN_KEYS:
            entry["columns"][key] = field
        elif key in TAG_KEYS:
            entry["tags"][key] = field
        else:
            raise InputError(f"{where}: unknown mapping key {key!r}; columns: {', '.join(COLUMN_KEYS)}; "
                             f"tags: role, content, {', '.join(TAG_KEYS)}; also field, formatting",
                             hint=f"e.g. {EXAMPLES}")
    return entry
