"""Errors for user mistakes: the CLI prints their message, never a traceback."""

from __future__ import annotations


class OidError(Exception):
    """Base class: the message says what was expected, what was found, where, and what to do next."""


class InputError(OidError):
    """Unreadable or invalid input data; carries the location when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 offset: int | None = None, index: int | None = None, hint: str | None = None):
        self.file, self.line, self.offset, self.index, self.hint = file, line, offset, index, hint
        places = (("line", line), ("byte offset", offset), ("record", index))
        where = ", ".join(f"{k} {v}" for k, v in places if v is not None)
        full = f"{file}: " if file else ""
        full += f"{message}" + (f" (at {where})" if where else "")
        if hint:
            full += f"\nhint: {hint}"
        super().__init__(full)


class ConfigError(OidError):
    """A recipe, training config or option that does not validate."""


# errno name -> what to do about it; the one table both io and the CLI use for operating-system errors
OS_ERROR_FIXES: dict[str, str] = {
    "ENOENT": "check the path (quote globs so the shell does not expand them)",
    "EACCES": "check its permissions (ls -l): make it readable, or write to a folder you own",
    "EPERM": "check its permissions (ls -l): make it readable, or write to a folder you own",
    "EROFS": "the file system is read-only: write the output somewhere else",
    "ENOSPC": "the disk is full: free some space or write the output to another disk",
    "EDQUOT": "your disk quota is used up: free some space or write the output to another disk",
    "ELOOP": "a symbolic link points (through others) back to itself: fix or remove the link",
    "EISDIR": "a folder was given where a file is expected: name a file",
    "ENOTDIR": "a file was given where a folder is expected (or inside the path): check the path",
    "EEXIST": "a file is where a folder would be created: choose another output folder",
    "ENAMETOOLONG": "the path is too long: use a shorter one",
    "EMFILE": "too many open files: raise the limit (ulimit -n) or read fewer shards at once",
}


def os_error_fix(error: OSError) -> str:
    """What to do about an operating-system error, from its errno."""
    import errno

    return OS_ERROR_FIXES.get(errno.errorcode.get(error.errno or 0, ""), "check the path and try again")


def describe_exception(error: BaseException) -> str:
    """One message for any exception that reached the command line: what, which file, where, what to do.

    Our own :class:`OidError` already says all of it. Library and system errors are named by kind; an
    error of a kind we do not expect is a bug of ours, and the message says how to report it.
    """
    if isinstance(error, OidError):
        return str(error)
    if isinstance(error, OSError) and error.errno is not None:
        names = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        return f"{names + ': ' if names else ''}{error.strerror or error}\nhint: {os_error_fix(error)}"
    if isinstance(error, UnicodeDecodeError):
        return (f"text is not valid {error.encoding} at byte {error.start:,} ({error.reason})\n"
                "hint: convert the file to UTF-8 first, e.g. iconv -f GB18030 -t UTF-8 in.txt > out.txt")
    if isinstance(error, MemoryError):
        return "out of memory\nhint: read fewer or smaller files at once, or use a machine with more memory"
    if isinstance(error, EOFError):
        return (f"the input ended early ({error or 'end of file'})\n"
                "hint: a compressed file is cut (fetch it again), or standard input was closed")
    if type(error).__module__.startswith(("zstandard", "zlib", "gzip")):
        return (f"compressed data is cut or corrupt ({error})\n"
                "hint: check the download (sizes, checksums) or fetch the file again")
    if isinstance(error, OSError):  # no errno: a library's own read or write failure
        return (f"input/output error: {error}\n"
                "hint: check the files and the disk; --debug shows where it happened")
    if type(error).__module__.startswith("pyarrow"):
        return (f"Arrow/Parquet data is corrupt or unsupported ({error})\n"
                "hint: check that the file is complete (sizes, checksums) and was written by a Parquet/Arrow writer")
    return (f"unexpected {type(error).__name__}: {error}\n"
            "hint: this is a bug in oidkit; run again with --debug (or OIDKIT_DEBUG=1) and report the traceback")
