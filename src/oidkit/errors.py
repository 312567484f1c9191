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
