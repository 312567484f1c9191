"""language: offline language identification (py3langid) of user and assistant text, with a keep-list;
kept records carry the language identified in ``meta.lang``."""

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
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def sample(self, full: str) -> str | None:
        """The part of ``full`` to identify, or None when it is too short to judge."""
        sample = full[: self.config.max_chars]
        return sample if len(sample.strip()) >= self.config.min_chars else None

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        roles = self.config.roles
        texts = {role: text(record, (role,)) for role in roles}
        if not any(self.sample(full) for full in texts.values()):
            # "Reply with one word" / "Okay.": no role alone says enough, together they may.
            texts = {"+".join(roles): text(record, roles)}
        found: dict[str, str] = {}
        for role, full in texts.items():
            sample = self.sample(full)
            if sample is None:
                continue
            language, probability = self.identifier.classify(sample)
            if language not in self.config.keep:
                return False, "language_not_kept", {"role": role, "language": language,
                                                    "probability": round(float(probability), 3)}
            found[role] = language
        # meta.lang is the answer's language, else the first judged role's. Users paste code, articles and
        # transcripts in another language and ask for translations, so the answer (what a model trains to
        # write) says best what the conversation is in; neither the longest role (the pasted text) nor all
        # roles joined (a mix of two kept languages can come out as a third, yue or id) does as well.
        # Too little text even together: "unknown", as the report says, rather than no stamp, which would let
        # readers guess from the same few characters (a "hi" comes out as af or br).
        return True, "", found.get("assistant") or next(iter(found.values()), "unknown")
