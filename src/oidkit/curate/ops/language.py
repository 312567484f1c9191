"""language: offline language identification (py3langid) of user and assistant text, with a keep-list."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from oidkit.curate.base import Filter, OpConfig, register
from oidkit.records import text


class LanguageConfig(OpConfig):
    keep: list[str] = ["en", "zh"]
    """ISO 639-1 codes to keep (py3langid's codes, e.g. en, zh, ja, fr)."""
    roles: list[str] = ["user", "assistant"]
    """Each role's text is identified separately; every one must be in the keep-list."""
    max_chars: int = 2000
    """Identify on the first N characters of each role's text: enough for a confident guess, bounded cost."""
    min_chars: int = 20
    """Roles with less text than this are not judged (too short to identify reliably)."""

    @field_validator("keep")
    @classmethod
    def _lower(cls, codes: list[str]) -> list[str]:
        return [c.lower() for c in codes]


@register
class Language(Filter):
    """Drop records whose user or assistant text is in a language outside the keep-list."""

    name = "language"
    Config = LanguageConfig
    reasons = {"language_not_kept": "a role's text was identified as a language outside the keep-list"}

    def setup(self) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        for role in self.config.roles:
            sample = text(record, (role,))[: self.config.max_chars]
            if len(sample.strip()) < self.config.min_chars:
                continue
            language, probability = self.identifier.classify(sample)
            if language not in self.config.keep:
                return False, "language_not_kept", {"role": role, "language": language,
                                                    "probability": round(float(probability), 3)}
        return True, "", None
