"""pii: replace personal data with typed placeholders (``<EMAIL>``, ``<PHONE>``, ...), counted per type.

Patterns find candidates; checks that the data itself carries decide: the Luhn digit for card numbers,
the ISO 7064 check character and a real birth date for Chinese resident IDs, ``ipaddress`` for IPs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date
from typing import Literal

from oidkit.curate.base import Mapper, OpConfig, register

PiiType = Literal["email", "cn_id", "credit_card", "phone", "ip_address", "api_key"]


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (every second digit from the right doubled)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_valid(candidate: str) -> bool:
    """GB 11643-1999: 17 digits with a real birth date (positions 7-14) and an ISO 7064 MOD 11-2 check."""
    body, check = candidate[:17], candidate[17].upper()
    try:
        date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return False
    expected = "10X98765432"[sum(int(d) * w for d, w in zip(body, _CN_ID_WEIGHTS, strict=True)) % 11]
    return check == expected


def _ip_valid(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


# (type, pattern, check). Order matters: longer digit runs (IDs, cards) are replaced before phone numbers.
# Boundaries are ASCII on purpose: Chinese text puts digits right after characters ("电话13812345678").
PATTERNS: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("email", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
                         r"(?![A-Za-z0-9])"), None),
    ("api_key", re.compile(r"(?<![A-Za-z0-9_-])(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}"
                           r"|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
                           r"|hf_[A-Za-z0-9]{30,})"), None),
    ("cn_id", re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])"), cn_id_valid),
    ("credit_card", re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
     lambda s: luhn_valid(re.sub(r"\D", "", s)) and re.sub(r"\D", "", s)[0] in "23456"),
    ("phone", re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"  # China mobile
                         r"|(?<![0-9A-Za-z+])(?:\+1[-. ]?)?\(?[2-9]\d{2}\)?[-. ]\d{3}[-. ]\d{4}(?!\d)"  # N. America
                         r"|(?<![0-9A-Za-z])\+\d{1,3}(?:[-. ]?\d{2,4}){2,4}(?!\d)"), None),  # international, +
    ("ip_address", re.compile(r"(?<![0-9A-Za-z.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?[0-9A-Za-z])"
                              r"|(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z_:])"
                              r"|(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])"),
     _ip_valid),
]
# A cheap necessary condition per type: text without it cannot match, so the costly pattern is skipped
# (most turns hold no run of 7 digits, no "@", no IP-like dots or colons).
_DIGIT_RUN = re.compile(r"\d[\d .()-]{5}\d")
PREFILTERS: dict[str, re.Pattern] = {
    "email": re.compile("@"), "api_key": re.compile(r"sk-|AKIA|gh[pousr]_|xox[abprs]-|AIza|hf_"),
    "cn_id": _DIGIT_RUN, "credit_card": _DIGIT_RUN, "phone": _DIGIT_RUN,
    "ip_address": re.compile(r"\d\.\d|:[0-9A-Fa-f]{0,4}:"),
}
PLACEHOLDERS = {"email": "<EMAIL>", "api_key": "<API_KEY>", "cn_id": "<CN_ID>", "credit_card": "<CREDIT_CARD>",
                "phone": "<PHONE>", "ip_address": "<IP_ADDRESS>"}


class PiiConfig(OpConfig):
    types: list[PiiType] = ["email", "cn_id", "credit_card", "phone", "ip_address", "api_key"]
    """Which kinds of personal data to redact."""
    roles: list[str] = ["user", "assistant", "system", "tool"]
    """Which turns to redact."""


@register
class Pii(Mapper):
    """Replace e-mails, phones, IPs, card numbers, Chinese IDs and API keys with typed placeholders."""

    name = "pii"
    Config = PiiConfig

    def map(self, record: dict) -> tuple[dict, dict[str, int]]:
        counts: dict[str, int] = {}
        messages = []
        for message in record["messages"]:
            content = message.get("content")
            if isinstance(content, str) and message.get("role") in self.config.roles:
                redacted = redact(content, self.config.types, counts)
                if redacted != content:
                    message = {**message, "content": redacted}
            messages.append(message)
        return ({**record, "messages": messages}, counts) if counts else (record, counts)


def redact(text: str, types: list[str], counts: dict[str, int]) -> str:
    """``text`` with every valid match of the wanted types replaced; ``counts`` gets one per replacement."""
    for kind, pattern, check in PATTERNS:
        if kind not in types or not PREFILTERS[kind].search(text):
            continue

        def replace(match: re.Match, kind=kind, check=check) -> str:
            if check is not None and not check(match.group(0)):
                return match.group(0)
            counts[kind] = counts.get(kind, 0) + 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)
    return text
