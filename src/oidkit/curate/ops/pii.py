"""pii: replace personal data with typed placeholders (``<EMAIL>``, ``<PHONE>``, ...), counted per type.

Patterns find candidates; checks decide, from what the data itself carries (the Luhn digit for card numbers,
the ISO 7064 check character and a real birth date for Chinese resident IDs, ``ipaddress`` for IPs, 8-15
digits for international phones) and from the words just before it: ``version 1.2.3.4`` is no address,
``order 415-555-2671`` no phone, and 40 base64 characters are an AWS secret key only after "secret" or an
access key id. ``benchmarks/bench_pii.py`` measures recall and precision per type on planted cases.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date
from typing import Literal, NamedTuple

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
# GB/T 2260 province codes, the first two digits (71 Taiwan, 81 Hong Kong, 82 Macau, 83 residence permits).
_CN_PROVINCES = {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
                 "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
                 "83"}


def cn_id_valid(candidate: str) -> bool:
    """GB 11643-1999: a province code, a real birth date (positions 7-14) and an ISO 7064 MOD 11-2 check."""
    body, check = candidate[:17], candidate[17].upper()
    if body[:2] not in _CN_PROVINCES:
        return False
    try:
        date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return False
    expected = "10X98765432"[sum(int(d) * w for d, w in zip(body, _CN_ID_WEIGHTS, strict=True)) % 11]
    return check == expected


# Words that say the number after them is a version, a section or an order, not an address or a phone.
_VERSION_BEFORE = re.compile(r"(?i)(?:versions?|\bver\.?|\brelease|\bbuild|\bv|\bsection|\bchapter|§|"
                             r"版本号?|章节|第)[\s\"':：=]*$")
_PHONE_BEFORE = re.compile(r"(?i)phone|\btel\b|\bcall|mobile|\bfax|whatsapp|\bcell|电话|手机|致电|联系|微信")
_NOT_PHONE_BEFORE = re.compile(r"(?i)(?:order|tracking|parcel|package|invoice|shipment|waybill|serial|account|"
                               r"\bacct|\bsku|\bisbn|订单|单号|运单|快递|包裹|物流|发票|编号|序列号|账号)[^0-9]{0,20}$")
_SECRET_BEFORE = re.compile(r"(?i)secret|\baws|AKIA[0-9A-Z]{16}|<API_KEY>|密钥")  # the key id may be redacted already
_FILE_TLDS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "js", "css", "json", "txt", "md", "html"}


def _before(match: re.Match, chars: int) -> str:
    return match.string[max(0, match.start() - chars):match.start()]


def _email_valid(match: re.Match) -> bool:
    """Not an image at a scale (``icon@2x.png``) or a file: the last label is a domain, not an extension."""
    return match.group(0).rsplit(".", 1)[1].lower() not in _FILE_TLDS


def _ip_valid(match: re.Match) -> bool:
    """A host's address: not a version (``version 1.2.3.4``, ``python-3.6.0.0-win``), a section number, a
    slice in code (``a[1::2]``: an IPv6 address needs three groups, or one of four hex digits), nor an address
    that is nobody's (loopback, 0.0.0.0, a network ``x.x.x.0``, a mask ``255.x.x.x``)."""
    value, before = match.group(0), _before(match, 20)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if _VERSION_BEFORE.search(before):
        return False
    if address.is_loopback or address.is_unspecified:
        return False
    if address.version == 4:
        if value.endswith(".0") or value.startswith("255."):
            return False
        after = match.string[match.end():match.end() + 2]
        return not (before.endswith(("-", "_")) or re.match(r"[-_][A-Za-z]", after))
    groups = [g for g in value.split(":") if g]
    return len(groups) >= 3 or any(len(g) == 4 for g in groups)


def _phone_valid(match: re.Match) -> bool:
    """A phone number unless what comes before calls it an order, a parcel, an invoice... (unless it says phone);
    international numbers have 8 to 15 digits (E.164)."""
    if match.group(0).startswith("+") and not 8 <= sum(c.isdigit() for c in match.group(0)) <= 15:
        return False
    before = _before(match, 30)
    return bool(_PHONE_BEFORE.search(before)) or not _NOT_PHONE_BEFORE.search(before)


def _api_key_valid(match: re.Match) -> bool:
    """Random keys of 20 to 50 characters hold digits or mix cases; ``xoxp-your-token-here`` and
    ``sk-xxxxxxxx...`` are placeholders. AWS key ids (AKIA and 16 upper-case base32 characters) are recognised
    by their shape alone."""
    value = match.group(0)
    return (value.startswith("AKIA") or any(c.isdigit() for c in value)
            or (any(c.isupper() for c in value) and any(c.islower() for c in value)))


def _card_valid(match: re.Match) -> bool:
    """Luhn-valid, from a card network (2-6), 13 to 16 digits; 17 to 19 only for UnionPay (62): a longer number
    is more often an ID or an order number whose last digit happens to fit."""
    digits = re.sub(r"\D", "", match.group(0))
    return luhn_valid(digits) and digits[0] in "23456" and (len(digits) <= 16 or digits.startswith("62"))


def _aws_secret_valid(match: re.Match) -> bool:
    """40 base64 characters are an AWS secret key only beside the word secret/AWS or an access key id, and
    mixed (upper, lower, digit): a git SHA-1 is 40 lower-case hex digits."""
    value = match.group(0)
    return (any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)
            and bool(_SECRET_BEFORE.search(_before(match, 80))))


class Detector(NamedTuple):
    kind: str
    prefilter: re.Pattern  # a cheap necessary condition: text without it cannot match, the costly pattern is skipped
    pattern: re.Pattern
    check: Callable[[re.Match], bool] | None  # decides on the match, its digits and the text before it


# Boundaries are ASCII on purpose: Chinese text puts digits right after characters ("电话13812345678").
# A phone is not the tail of a dashed code (parcel PIN 11-21-212-046-0000, bank reference D-14840620000).
_NOT_AFTER_CODE = r"(?<![0-9A-Za-z+])(?<![0-9A-Za-z][-.])"
_CHINA_MOBILE = r"(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?![-.]?\d)"
_NORTH_AMERICA = r"(?:\+1[-. ]?)?\(?[2-9]\d{2}\)?[-. ]\d{3}[-. ]\d{4}(?![-.]?\d)"
_INTERNATIONAL = r"(?<![0-9A-Za-z])\+\d{1,3}(?:[-. ]?\(?\d{1,4}\)?){2,6}(?![\d)])"  # 8-15 digits: checked
_DIGIT_RUN = re.compile(r"\d[\d .()-]{5}\d")
# Order matters: longer digit runs (IDs, cards) are replaced before phone numbers.
DETECTORS: list[Detector] = [
    Detector("email", re.compile("@"),
             re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
                        r"(?![A-Za-z0-9])"), _email_valid),
    Detector("api_key", re.compile(r"sk-|AKIA|gh[pousr]_|xox[abprs]-|AIza|hf_"),
             re.compile(r"(?<![A-Za-z0-9_-])(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}"
                        r"|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
                        r"|hf_[A-Za-z0-9]{30,})"), _api_key_valid),
    Detector("api_key", _SECRET_BEFORE,  # AWS secret access keys
             re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), _aws_secret_valid),
    Detector("cn_id", _DIGIT_RUN, re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])"),
             lambda m: cn_id_valid(m.group(0))),
    Detector("credit_card", _DIGIT_RUN,
             re.compile(r"(?<![0-9A-Za-z.-])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z-]|\.\d)"), _card_valid),
    Detector("phone", _DIGIT_RUN,
             re.compile(f"{_NOT_AFTER_CODE}(?:{_CHINA_MOBILE}|{_NORTH_AMERICA})|{_INTERNATIONAL}"), _phone_valid),
    Detector("ip_address", re.compile(r"\d\.\d|:[0-9A-Fa-f]{0,4}:"),
             re.compile(r"(?<![0-9A-Za-z.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?[0-9A-Za-z])"
                        r"|(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z_:])"
                        r"|(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])"),
             _ip_valid),
]
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


def redact(text: str, types: list[str], counts: dict[str, int], hits: list[tuple[str, str]] | None = None) -> str:
    """``text`` with every valid match of the wanted types replaced; ``counts`` gets one per replacement and
    ``hits``, if given, each ``(type, replaced text)``."""
    for kind, prefilter, pattern, check in DETECTORS:
        if kind not in types or not prefilter.search(text):
            continue

        def replace(match: re.Match, kind=kind, check=check) -> str:
            if check is not None and not check(match):
                return match.group(0)
            counts[kind] = counts.get(kind, 0) + 1
            if hits is not None:
                hits.append((kind, match.group(0)))
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)
    return text
