"""Atomic writes: never leave a partial file under a final name.

``atomic_path`` / ``write_atomic`` / ``atomic_folder`` write under a hidden temporary name in the same folder
(``.NAME.tmp-PID``), fsync, and rename onto the final name only on success: after a crash a reader finds the
previous complete file or none, never a partial one. Readers skip hidden names, and the next write of the same
output removes the leftovers of a killed run. A base module (it imports nothing of ours but ``errors``) so that
every layer can write safely; ``oidkit.io.outputs`` adds the input-protection and shard-set rules on top.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from oidkit.errors import ConfigError

TEMP_MARK = ".tmp-"


def writes_in_place(path: Path) -> bool:
    """Whether ``path`` is a device, pipe or socket (``/dev/stdout``, ``/dev/null``, a named pipe): such an
    output is written to directly, since renaming a file onto it would replace the device node itself."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def rename_target(path: str | Path) -> Path:
    """The name a finished output is renamed onto: ``path``, or the file a symbolic link there points to
    (renaming onto the link would replace the link instead of the file the user named through it)."""
    path = Path(path)
    return path.resolve() if path.is_symlink() else path


def temp_path(path: Path) -> Path:
    """``out/kept.jsonl`` -> ``out/.kept.jsonl.tmp-PID``: hidden, so folder reads and globs skip it."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def is_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary name of an unfinished (or killed) write."""
    return path.name.startswith(".") and TEMP_MARK in path.name


def fresh_temp_path(path: Path) -> Path:
    """:func:`temp_path` of ``path``, ready to write: its folder made, leftovers of killed runs removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    return temp_path(path)


def writing_path(path: str | Path) -> Path:
    """Where to write ``path``'s new content: the device or pipe itself (see :func:`writes_in_place`), or a
    :func:`fresh_temp_path` beside the file (a symbolic link followed, see :func:`rename_target`)."""
    target = rename_target(path)
    return target if writes_in_place(target) else fresh_temp_path(target)


def remove_leftovers(path: Path) -> None:
    """Remove temporary files of ``path`` left by killed runs (those whose process is gone)."""
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f".{glob_escape(path.name)}{TEMP_MARK}*"):
        pid = leftover.name.rsplit(TEMP_MARK, 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it is synced and renamed onto ``path``,
    on an exception it is removed and ``path`` is left as it was. A device or pipe is yielded as it is
    (see :func:`writes_in_place`); a symbolic link is followed, so the file it points to is replaced."""
    path = rename_target(path)
    temp = writing_path(path)  # a resolved path: only the link check again, no second resolve
    if temp == path:
        yield path
        return
    try:
        yield temp
        fsync(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_folder(path: str | Path, *, owned: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` to fill (e.g. by ``save_pretrained``); on success it replaces
    ``path`` (an old folder is moved aside first, then deleted), on an exception it is deleted.

    A user-named folder (``owned=False``) is replaced only when the new one rewrites every name in it, so
    exporting into a folder holding other files (``-o .``) is refused instead of deleting them; ``owned``
    folders (checkpoints, ``RUN/best``) are ours to replace whatever they hold.
    """
    path = Path(path)
    with temp_folder(path) as temp:
        yield temp
        if path.is_dir() and not owned:
            foreign = sorted({p.name for p in path.iterdir()} - {p.name for p in temp.iterdir()})
            if foreign:
                raise ConfigError(f"{path}: this output folder holds files the command does not write "
                                  f"({', '.join(foreign[:5])}); replacing it would delete them. Choose a new or "
                                  "empty folder, or delete it first.")
        for file in temp.rglob("*"):
            if file.is_file():
                fsync(file)
        old = path.with_name(f".{path.name}.old{TEMP_MARK}{os.getpid()}")
        if path.exists():
            os.replace(path, old)
        os.replace(temp, path)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def temp_folder(path: str | Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``path`` (``.NAME.tmp-PID``; leftovers of killed runs removed first),
    deleted when the block ends, whatever happens: what the block keeps it must move out."""
    temp = fresh_temp_path(Path(path))
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source``, or an atomic copy where links cannot be made (another file
    system, a file system without them)."""
    try:
        os.link(source, target)
    except OSError:
        with atomic_path(target) as temp:
            shutil.copyfile(source, temp)
