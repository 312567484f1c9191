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

from oidkit.report.stats import LANGID_CHARS, LanguageGuesser


def user_turns(record: dict) -> dict:
    """What the language guess reads of a record (its user turns, cut, and ``meta.lang``, which curation's
    language step sets and which wins): small to send to the child."""
    lang = (record.get("meta") or {}).get("lang")
    return {"messages": [{"role": "user", "content": str(m.get("content") or "")[:LANGID_CHARS]}
                         for m in record["messages"] if m.get("role") == "user"], "meta": {"lang": lang}}


def identify_languages(records: list[dict]) -> list[str]:
    """Language of each record as ``oid report`` defines it (:class:`oidkit.report.stats.LanguageGuesser`)."""
    child = subprocess.run([sys.executable, "-m", "oidkit.review.languages"], capture_output=True, check=True,
                           input=orjson.dumps([user_turns(r) for r in records]))
    return orjson.loads(child.stdout)


def main() -> None:
    guess = LanguageGuesser()
    records = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(orjson.dumps([guess(record) for record in records]))


if __name__ == "__main__":
    main()
