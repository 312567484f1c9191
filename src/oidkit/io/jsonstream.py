"""Streaming JSON arrays and JSONL with exact byte offsets and line numbers.

A JSON array is never decoded whole: a regex tokenizer (strings as single tokens, so braces inside text
do not count) finds where each top-level element starts and ends in a window of bytes, and orjson parses
just that span. Most files are written by ``json.dump`` (one element per line, or indented), so a byte
search first guesses the element's end from the layout and orjson checks the guess (see
:func:`_whole_element`); the tokenizer runs only where the guess fails. Memory stays at one window
plus one element, and every row knows its byte offset, line and index. A file cut mid-record ends in a
``truncated`` item that says how many bytes were unreadable; the caller decides whether that is an error or a salvage.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

CHUNK_BYTES = 1 << 23
# The next structural byte; commas matter only between top-level elements. Strings are skipped with
# bytes.find (memchr speed) rather than scanned by the regex: they are most of the bytes.
TOP_LEVEL = re.compile(rb'[\[\]{},"]')
NESTED = re.compile(rb'[\[\]{}"]')
WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # JSON whitespace plus the UTF-8 byte order mark
JSON_SPACE = re.compile(rb"[ \t\r\n]*")
CLOSER = {0x7B: b"}", 0x5B: b"]"}
# Guesses that fail (a compact one-line array, a window boundary) fall back to the tokenizer; past this
# many misses, plus one per 8 hits, a file's layout is not one the guess fits and it stops being tried.
GUESS_MISSES = 16


@dataclass
class Unreadable:
    """A row that could not be decoded: why, and its raw text so the reject keeps it."""

    reason: str  # invalid_json | invalid_utf8 | truncated
    detail: str
    raw: Any  # the raw text, or the rows that could not be combined
    unreadable_bytes: int = 0


def parse_span(span: bytes) -> Any:
    """The JSON value in ``span``, or an :class:`Unreadable` saying why it is not one."""
    try:
        return orjson.loads(span)
    except orjson.JSONDecodeError as error:
        try:
            span.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Unreadable("invalid_utf8", f"invalid UTF-8 byte {span[bad.start]:#04x} at +{bad.start}",
                              span.decode("utf-8", "backslashreplace"))
        return Unreadable("invalid_json", str(error), span.decode("utf-8"))


def _trailing_data(rest: bytes, offset: int, index: int) -> Iterator[tuple[Unreadable, dict]]:
    """Anything but whitespace after the closing bracket is reported, never silently ignored."""
    extra = rest.lstrip(WHITESPACE)
    if extra:
        offset += len(rest) - len(extra)
        yield (Unreadable("invalid_json", f"data after the closing bracket of the top-level array at byte {offset:,} "
                          "(JSONL whose first line is an array?)", extra[:200].decode("utf-8", "backslashreplace")),
               {"offset": offset, "index": index})


def parse_python_literal(span: bytes) -> Any:
    """The value of a Python literal line (``{'a': 1}``), or an :class:`Unreadable`.

    ``ast.literal_eval`` only builds literals (strings, numbers, lists, dicts, True/False/None): it runs
    no code, unlike ``eval``.
    """
    try:
        return ast.literal_eval(span.decode("utf-8").strip())
    except (ValueError, TypeError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as error:
        return Unreadable("invalid_json", f"neither JSON nor a Python literal: {error}",
                          span.decode("utf-8", "backslashreplace"))


def iter_jsonl(stream: BinaryIO, python_literals: bool = False) -> Iterator[tuple[Any, dict]]:
    """``(value, position)`` per non-blank line; position has ``line`` (1-based) and byte ``offset``.

    With ``python_literals``, a line that is not JSON is read as a Python literal (see
    :func:`parse_python_literal`).
    """
    offset = 0
    for line_number, line in enumerate(stream, 1):
        if line_number == 1 and line.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark is not data
            line, offset = line[3:], 3
        if line.strip():
            value = parse_span(line)
            if python_literals and isinstance(value, Unreadable) and value.reason == "invalid_json":
                value = parse_python_literal(line)
            yield value, {"line": line_number, "offset": offset}
        offset += len(line)


class _LineCounter:
    """Line numbers of increasing byte offsets, counting each newline of the window once."""

    def __init__(self) -> None:
        self.offset, self.line = 0, 1

    def at(self, buf: bytes, base: int, offset: int) -> int:
        self.line += buf.count(b"\n", self.offset - base, offset - base)
        self.offset = offset
        return self.line


def _string_end(buf: bytes, position: int) -> int:
    """Index just past the quote closing the string whose body starts at ``position``; -1 if not in ``buf``."""
    while (quote := buf.find(b'"', position)) >= 0:
        first = quote
        while first > position and buf[first - 1] == 0x5C:  # the run of backslashes before the quote
            first -= 1
        if (quote - first) % 2 == 0:  # an even run escapes itself, not the quote
            return quote + 1
        position = quote + 1
    return -1


def _whole_element(buf: bytes, start: int) -> tuple[Any, int, int] | None:
    """``(value, first byte, index of the ',' or ']' after it)`` of the element starting at ``start``, or ``None``.

    Raw newlines cannot occur inside JSON strings, so ``json.dump``'s layouts give the end away: an element
    alone on its line ends at the end of that line, an indented one at the first line holding only its
    closing bracket at its own indentation. orjson parses the guessed span; because it parses from the
    element's first byte, a span that parses whole *is* the element (a shorter or longer one would not
    parse), and a ``,`` or ``]`` must follow it, so the result is the tokenizer's exactly.
    """
    first = JSON_SPACE.match(buf, start).end()
    closer = CLOSER.get(buf[first] if first < len(buf) else -1)
    if closer is None:
        return None
    line_end = buf.find(b"\n", first)
    if line_end < 0:
        return None
    line = buf[first:line_end].rstrip(b" \t\r")
    line = line[:-1] if line.endswith(b",") else line
    if line.endswith(closer) and len(line) > 1:
        end = first + len(line)
    else:
        newline = buf.rfind(b"\n", start, first)
        if newline < 0:
            return None
        close = buf.find(b"\n" + buf[newline + 1:first] + closer, line_end)
        if close < 0:
            return None
        end = close + first - newline + 1
    after = JSON_SPACE.match(buf, end).end()
    if buf[after:after + 1] not in (b",", b"]"):
        return None
    try:
        return orjson.loads(buf[first:end]), first, after
    except orjson.JSONDecodeError:
        return None


def iter_json_array(stream: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[Any, dict]]:
    """``(value, position)`` per element of a top-level JSON array, streamed.

    Position has ``line``, byte ``offset`` and ``index`` (0-based). When the array does not close, the
    last item is an ``Unreadable("truncated")`` whose ``unreadable_bytes`` counts the bytes from the start
    of the incomplete element to the end of the stream.
    """
    buf = stream.read(chunk_bytes)
    base = 0  # stream offset of buf[0]
    pos = len(buf) - len(buf.lstrip(WHITESPACE))
    if buf[pos:pos + 1] != b"[":
        raise ValueError("not a JSON array")
    lines, depth, index, pos = _LineCounter(), 1, 0, pos + 1
    start = pos  # where the current element's span begins (just after '[' or ',')
    hits = misses = 0

    def element(end: int) -> tuple[Any, dict] | None:
        span = buf[start:end]
        stripped = span.strip(WHITESPACE)
        if not stripped:
            return None
        offset = base + start + (len(span) - len(span.lstrip(WHITESPACE)))
        return parse_span(stripped), {"line": lines.at(buf, base, offset), "offset": offset, "index": index}

    while True:
        if pos == start and depth == 1 and misses <= GUESS_MISSES + hits // 8:
            found = _whole_element(buf, start)
            if found is None:
                misses += 1
            else:
                hits += 1
                value, first, after = found
                yield value, {"line": lines.at(buf, base, base + first), "offset": base + first, "index": index}
                index, start = index + 1, after + 1
                pos = start
                if buf[after] == 0x5D:  # ']' closes the array
                    yield from _trailing_data(buf[pos:] + stream.read(1024), base + pos, index)
                    return
                continue
        match = (TOP_LEVEL if depth == 1 else NESTED).search(buf, pos)
        end = -1 if match is None else match.end()
        if match is not None and buf[match.start()] == 0x22:
            end = _string_end(buf, end)
        if end < 0:  # need more bytes: no structural byte, or a string running past the window
            more = stream.read(chunk_bytes)
            if not more:
                break
            lines.at(buf, base, base + start)
            buf, base, pos = buf[start:] + more, base + start, pos - start
            start = 0
            continue
        byte, pos = buf[match.start()], end
        if byte == 0x22:
            continue
        if byte in b"{[":
            depth += 1
        elif byte in b"}]":
            depth -= 1
            if depth == 0:
                item = element(match.start())
                if item:
                    yield item
                yield from _trailing_data(buf[pos:] + stream.read(1024), base + pos, index + bool(item))
                return
        elif byte == 0x2C and depth == 1:  # ',' between top-level elements
            item = element(match.start())
            yield item or (Unreadable("invalid_json", "empty element between commas", ""),
                           {"line": lines.at(buf, base, base + start), "offset": base + start, "index": index})
            index, start = index + 1, pos
    tail = buf[start:]
    offset = base + start + (len(tail) - len(tail.lstrip(WHITESPACE)))
    end = base + len(buf)
    tail = tail.strip(WHITESPACE)
    detail = (f"record {index} starts at byte {offset:,} and the file ends at byte {end:,}" if tail
              else f"the array is not closed: the file ends at byte {end:,} after {index} records")
    yield (Unreadable("truncated", detail, tail.decode("utf-8", "backslashreplace"), end - offset if tail else 0),
           {"line": lines.at(buf, base, offset), "offset": offset, "index": index})
