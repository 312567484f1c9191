"""language: offline language identification (py3langid) of user and assistant text, with a keep-list;
kept records carry the language identified in ``meta.lang``."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from oidkit.core.language import MAX_CHARS, MIN_CHARS, LanguageIdentifier, pick_language, role_languages
from oidkit.curate.base import Filter, OpConfig, register


class LanguageConfig(OpConfig):
    keep: list[str] = ["en", "zh"]
    """ISO 639-1 codes to keep (py3langid's codes, e.g. en, zh, ja, fr)."""
    roles: list[str] = ["user", "assistant"]
    """Each role's text is identified separately; every one must be in the keep-list."""
    max_chars: int = MAX_CHARS
    """Identify on the first N characters of each role's text: enough for a confident guess, bounded cost."""
    min_chars: int = MIN_CHARS
    """Roles with less text than this are not judged (too short to identify reliably); when no role has
    this much, their text together is judged."""

    @field_validator("keep")
    @classmethod
    def _lower(cls, codes: list[str]) -> list[str]:
        return [c.lower() for c in codes]


@register
class Language(Filter):
    """Drop records whose user or assistant text is in a language outside the keep-list; stamp meta.lang."""

    name = "language"
    Config = LanguageConfig
    reasons = {"language_not_kept": "a role's text (or, when every role is too short, their text together) was "
                                    "identified as a language outside the keep-list"}
    stamp = "lang"

    def setup(self) -> None:
        self.identifier = LanguageIdentifier()

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        found = role_languages(record, self.identifier, roles=self.config.roles, max_chars=self.config.max_chars,
                               min_chars=self.config.min_chars)
        for role, (language, probability) in found.items():
            if language not in self.config.keep:
                return False, "language_not_kept", {"role": role, "language": language,
                                                    "probability": round(probability, 3)}
        # The stamp is the record's language by the one rule (oidkit.core.language), which report, review and
        # inspect read too.
        return True, "", pick_language(found)
