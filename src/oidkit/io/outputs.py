"""Safe outputs: never overwrite an input, and never leave a partial file under a final name.

- ``refuse_overwriting_inputs`` runs before anything is opened for writing: an output that is an input
  (same file after resolving symlinks and ``..``, or the same device and inode, as a hard link is) or an
  output folder that is or holds an input is refused with a message naming both paths.
- Atomic writes themselves (``atomic_path`` / ``write_atomic`` / ``atomic_folder``) live in the base module
  ``oidkit.atomic`` so that every layer, core included, can use them.
- A shard set is published with ``publish_shards``: the old manifest goes first, the shards are renamed, and
  the manifest ``BASE.shards.json`` listing them is written last; a set without it is incomplete
  (``incomplete_outputs`` says so for ``oid validate`` / ``oid inspect``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import orjson

from oidkit.atomic import fsync, is_temp, write_atomic
from oidkit.errors import ConfigError
from oidkit.io.files import expand_paths

SHARD_NAME = re.compile(r"^(?P<base>.+)-(?P<number>\d{5})(?P<suffixes>(\.[A-Za-z0-9]+)*)$")
MANIFEST_SUFFIX = ".shards.json"


def refuse_overwriting_inputs(outputs: Iterable[str | Path | None], inputs: str | Path | list,
                              *, folders: Iterable[str | Path | None] = ()) -> None:
    """Raise ``ConfigError`` when an output file is an input, or an output folder is or holds one.

    ``outputs`` are files the command writes; ``folders`` are folders it writes into (or replaces).
    ``None`` entries are ignored, so optional outputs can be passed as they are.
    """
    input_files = [(path, path.resolve()) for path in expand_paths(inputs)]
    by_inode = {_inode(path): path for path, _ in input_files if path.exists()}
    for output in filter(None, outputs):
        output = Path(output)
        resolved = output.resolve()
        same = by_inode.get(_inode(output)) if output.is_file() else None
        same = same or next((path for path, real in input_files if real == resolved), None)
        if same is not None:
            raise ConfigError(f"{output}: this output is also an input, {same} (the same file"
                              f"{', through a link or ..' if str(output) != str(same) else ''}); writing it would "
                              "destroy the input before it is read. Write the output to another path.")
    for folder in filter(None, folders):
        folder = Path(folder)
        resolved = folder.resolve()
        for path, real in input_files:
            if real == resolved or resolved in real.parents:
                raise ConfigError(f"{folder}: this output folder {'is' if real == resolved else 'holds'} the "
                                  f"input {path}; the command writes into it and could overwrite the input. "
                                  "Choose an output folder that does not contain the inputs.")


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def manifest_path(base: Path) -> Path:
    """``out.parquet`` (the name shards derive from) -> ``out.shards.json``."""
    suffixes = "".join(base.suffixes)
    stem = base.name[: -len(suffixes)] if suffixes else base.name
    return base.with_name(stem + MANIFEST_SUFFIX)


def publish_shards(base: Path, shards: list[tuple[Path, Path, int]], stale: Iterable[Path]) -> None:
    """Rename written ``(temp, final, records)`` shards onto their names, all or none as a reader sees it:
    the old manifest is removed first and the new one written last; ``stale`` shards of an earlier, larger
    set are removed before the manifest appears."""
    manifest = manifest_path(base)
    manifest.unlink(missing_ok=True)
    for temp, final, _ in shards:
        fsync(temp)
        os.replace(temp, final)
    for old in stale:
        old.unlink(missing_ok=True)
    write_atomic(manifest, orjson.dumps({"shards": [final.name for _, final, _ in shards],
                                         "records": [count for _, _, count in shards]}, option=orjson.OPT_INDENT_2))


def incomplete_outputs(paths: Iterable[Path]) -> list[dict]:
    """Problems of files that are not complete outputs: leftover temporary files of a killed run, shards of a
    set whose manifest is missing (an interrupted publish), shards a manifest does not list."""
    problems = []
    for path in paths:
        if is_temp(path):
            problems.append({"file": str(path), "reason": "temporary_file",
                             "detail": "a leftover temporary file of an interrupted write, not a complete output; "
                                       "delete it and rerun the command that wrote it"})
            continue
        match = SHARD_NAME.match(path.name)
        if not match:
            continue
        first = path.with_name(f"{match['base']}-00000{match['suffixes']}")
        manifest = manifest_path(path.with_name(match["base"] + match["suffixes"]))
        if manifest.is_file():
            listed = orjson.loads(manifest.read_bytes()).get("shards", [])
            if path.name not in listed:
                problems.append({"file": str(path), "reason": "shard_not_in_manifest",
                                 "detail": f"{manifest.name} does not list this shard: it is not part of the set"})
        elif first.exists():
            problems.append({"file": str(path), "reason": "incomplete_shard_set",
                             "detail": f"no {manifest.name} beside this shard: oid writes it last, so the set may "
                                       "be incomplete (an interrupted run); rerun the command that wrote it "
                                       "(ignore this for shards oid did not write)"})
    return problems
