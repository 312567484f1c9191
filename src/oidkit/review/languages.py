"""Language identification for the review index, in a child process: JSON records in, JSON languages out.

py3langid costs ~1 ms a record; in a thread of the server it would hold the GIL for seconds and slow every
request, so a plain child process does it while the app already serves. Plain stdin/stdout rather than a
process pool: if the server is killed, the child finishes, finds its output pipe closed and exits, instead
of waiting forever for more work.
"""

from __future__ import annotations

import subprocess
import sys

import orjson

from oidkit.core.language import MAX_CHARS, ROLES, LanguageIdentifier, record_language


def language_view(record: dict) -> dict:
    """What the language rule reads of a record (each role's text, cut, and ``meta.lang``, which curation's
    language step sets and which wins): small to send to the child."""
    lang = (record.get("meta") or {}).get("lang")
    return {"messages": [{"role": m["role"], "content": str(m.get("content") or "")[:MAX_CHARS]}
                         for m in record["messages"] if m.get("role") in ROLES], "meta": {"lang": lang}}


def identify_languages(records: list[dict]) -> list[str]:
    """Language of each record by the one rule (:func:`oidkit.core.language.record_language`)."""
    child = subprocess.run([sys.executable, "-m", "oidkit.review.languages"], capture_output=True, check=True,
                           input=orjson.dumps([language_view(r) for r in records]))
    return orjson.loads(child.stdout)


def main() -> None:
    identifier = LanguageIdentifier()
    records = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(orjson.dumps([record_language(record, identifier) for record in records]))


if __name__ == "__main__":
    main()
