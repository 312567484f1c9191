"""The language of a record: one rule, used by ingest (``oid inspect``), curate (the ``language`` operator),
report and review.

1. ``meta["lang"]`` wins when set (curation's language step stamps it).
2. Otherwise py3langid identifies each role's text (user, assistant), on its first ``max_chars`` characters;
   a role with fewer than ``min_chars`` characters is not judged (too short to identify: "hi" comes out as af
   or br). When no role has enough text, their text together is judged.
3. The record's language is the answer's, else the first judged role's; ``"unknown"`` when even the text
   together is too short. Wu Chinese (``wuu``) counts as ``zh``: py3langid gives it to plain written Chinese.

Why the answer's: users paste code, articles and transcripts in another language and ask for translations,
so the answer (what a model trains to write) says best what the conversation is in; neither the longest role
(the pasted text) nor all roles joined (a mix of two languages can come out as a third, yue or id) does as well.
"""

from __future__ import annotations

from typing import Any

from oidkit.records import text

ROLES = ("user", "assistant")
MAX_CHARS = 2000  # enough for a confident guess; py3langid's cost grows with the length
MIN_CHARS = 20
# py3langid's model has a Wu Chinese class that catches ordinary written (Mandarin) Chinese, e.g. a plain answer
# about the Great Wall; Wu is hardly ever written, so a `keep: [zh]` recipe must not lose those records.
FOLDED = {"wuu": "zh"}


class LanguageIdentifier:
    """py3langid with normalised probabilities, loaded on first use (its model costs ~0.3 s to load)."""

    def __init__(self) -> None:
        self._identifier: Any = None

    def classify(self, sample: str) -> tuple[str, float]:
        if self._identifier is None:
            from py3langid.langid import MODEL_FILE
            from py3langid.langid import LanguageIdentifier as Py3LangId

            self._identifier = Py3LangId.from_model_file(MODEL_FILE, norm_probs=True)
        language, probability = self._identifier.classify(sample)
        return FOLDED.get(language, language), float(probability)


def role_languages(record: dict, identifier: LanguageIdentifier, *, roles: tuple[str, ...] | list[str] = ROLES,
                   max_chars: int = MAX_CHARS, min_chars: int = MIN_CHARS) -> dict[str, tuple[str, float]]:
    """``{role: (language, probability)}`` for every judged role (rule step 2); keys joined by ``+`` when
    only the roles' text together was long enough."""
    def sample(full: str) -> str | None:
        cut = full[:max_chars]
        return cut if len(cut.strip()) >= min_chars else None

    samples = {role: sample(text(record, (role,))) for role in roles}
    if not any(samples.values()):
        samples = {"+".join(roles): sample(text(record, roles))}
    return {role: identifier.classify(s) for role, s in samples.items() if s is not None}


def pick_language(found: dict[str, tuple[str, float]]) -> str:
    """Rule step 3: the answer's language, else the first judged role's, else ``"unknown"``."""
    chosen = found.get("assistant") or next(iter(found.values()), None)
    return chosen[0] if chosen else "unknown"


def record_language(record: dict, identifier: LanguageIdentifier) -> str:
    """The record's language by the whole rule (``meta.lang`` first)."""
    lang = (record.get("meta") or {}).get("lang")
    if isinstance(lang, str) and lang:
        return lang
    return pick_language(role_languages(record, identifier))
