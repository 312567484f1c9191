"""heuristics: cheap quality rules with documented defaults (lengths, ratios, repetition, boilerplate).

Repetition rules follow Gopher (Rae et al. 2021, table A1) measured on the prose of each assistant turn
(fenced code blocks left out: code repeats lines legitimately): the share of characters in duplicated
lines, the share taken by the most frequent word 2-gram and the share of characters covered by 10-grams
seen more than once. Every rule can be switched off with ``null``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from oidkit.curate.base import Filter, OpConfig, register
from oidkit.curate.text import normalised, tokens
from oidkit.records import first_user
from oidkit.text import cjk_ratio

REFUSALS_EN = [
    "as an ai language model", "as a language model", "as an ai model", "as an artificial intelligence",
    "i'm sorry, but i cannot", "i am sorry, but i cannot", "i'm sorry, but i can't", "i cannot fulfill",
    "i can't fulfill", "i am not able to provide", "i'm not able to provide", "i cannot provide assistance",
    "my knowledge cutoff", "my training data only goes",
]
REFUSALS_ZH = [
    "作为一个人工智能", "作为一个ai", "作为一名人工智能", "作为人工智能语言模型", "作为一个语言模型",
    "作为ai语言模型", "我只是一个ai", "我只是一个人工智能", "我是一个人工智能", "抱歉，我不能", "抱歉，我无法",
    "对不起，我不能", "对不起，我无法",
]
# How a finished answer may end: sentence punctuation (Latin and CJK), closing brackets/quotes, markup.
_FINISHED_END = set(".!?。！？…\"'”’)]}>»」』）】*`|:;~-_=#/\\")
_OPEN_FENCE = re.compile(r"^\s*```", re.MULTILINE)
_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_LIST_ITEM = re.compile(r"\s*(?:[-*+•]|\d+[.)、]|[A-Za-z][.)]|#+)\s")
# A letter's closing line: what follows it (names, titles, affiliations) needs no full stop.
_CLOSING = re.compile(r"\s*(?:sincerely|(?:best|kind|warm|warmest)(?: regards| wishes)?|regards|cheers|thanks|"
                      r"thank you|yours(?: truly| sincerely| faithfully)?|with love|love|respectfully|此致|敬礼)"
                      r"[\s,，!.]*$", re.IGNORECASE)
_SHORT_LINE_WORDS = 8
# A one-line answer without a full stop is complete as written when it is a headline, title, byline or
# closing ("Have a nice day"): at most this many words (or twice as many CJK characters), ...
_HEADLINE_WORDS = 24
# ... no sentence ending inside it ("U.S." is not one), brackets and quotes closed, and not ending on a word
# a sentence cannot end on (where cuts land: "the process by which plants and", "同时它还").
_SENTENCE_END_INSIDE = re.compile(r"[a-z]{2}[.!?]\s|[。！？]")
_PAIRS = ("()", "[]", "（）", "“”", "《》", "「」", "【】")
_OPEN_ENDINGS_EN = frozenset(
    "a an the and or but nor of to in on at for with by from as into onto about than then if because while when "
    "where which who whom whose whether that this these those is are was were be been being am its their his her "
    "our your my it not also very so such can could will would shall should may might must do does did has have "
    "had after before between through during without within against among toward towards upon via until both "
    "either neither".split())
_OPEN_ENDINGS_ZH = frozenset("的地得和与及或而并且还也是在了着把被从向对将以但就都又")
_CLOSERS = "\"'”’)]）」』》"


class HeuristicsConfig(OpConfig):
    min_turns: int | None = 2
    """Fewest user+assistant turns."""
    max_turns: int | None = 200
    """Most user+assistant turns."""
    min_chars: int | None = 20
    """Fewest characters of user+assistant text."""
    max_chars: int | None = 200_000
    """Most characters of user+assistant text."""
    min_alnum_ratio: float | None = 0.25
    """Least share of letters/digits (CJK counts) among non-space characters: catches symbol soup."""
    min_cjk_ratio: float | None = None
    """Least share of CJK characters (set e.g. 0.3 for a Chinese-only set)."""
    max_cjk_ratio: float | None = None
    """Most share of CJK characters (set e.g. 0.05 for an English-only set)."""
    max_dup_line_char_ratio: float | None = 0.3
    """Most share of an assistant turn's characters in lines that occur more than once (Gopher: 0.2)."""
    max_top_2gram_ratio: float | None = 0.2
    """Most share of an assistant turn's word characters in its most frequent 2-gram (Gopher: 0.2)."""
    max_dup_10gram_ratio: float | None = 0.3
    """Most share of an assistant turn's word characters covered by repeated 10-grams (Gopher: 0.1)."""
    min_repetition_tokens: int = 50
    """Repetition rules only judge assistant turns with at least this many tokens."""
    drop_empty_response: bool = True
    """Drop records whose last assistant turn is empty (or there is none)."""
    drop_truncated_response: bool = True
    """Drop records whose last assistant turn ends inside a code block or mid-sentence."""
    drop_refusals: bool = True
    """Drop records whose assistant text contains refusal / "as an AI language model" boilerplate."""
    refusal_phrases: list[str] = REFUSALS_EN + REFUSALS_ZH
    """Lower-case phrases searched in the lower-cased assistant text (English and Chinese defaults)."""
    max_copy_similarity: float | None = 0.9
    """Drop when the first answer's token set overlaps the instruction's this much (Jaccard): a copy."""


@register
class Heuristics(Filter):
    """Rule-based quality filter; the first rule that fails names the reason, its measurement the value."""

    name = "heuristics"
    Config = HeuristicsConfig
    reasons = {
        "too_few_turns": "fewer user+assistant turns than min_turns",
        "too_many_turns": "more user+assistant turns than max_turns",
        "too_short": "fewer characters than min_chars",
        "too_long": "more characters than max_chars",
        "low_alnum_ratio": "too few letters/digits among the characters",
        "low_cjk_ratio": "too few CJK characters",
        "high_cjk_ratio": "too many CJK characters",
        "empty_response": "the last assistant turn is empty or missing",
        "truncated_response": "the last assistant turn stops inside a code block or mid-sentence",
        "refusal": "the assistant text contains refusal / AI boilerplate (value: the phrase)",
        "instruction_copy": "the answer repeats the instruction (value: token Jaccard)",
        "repeated_lines": "an assistant turn is mostly repeated lines (value: share of characters)",
        "repeated_2gram": "one word 2-gram dominates an assistant turn (value: its share)",
        "repeated_10grams": "an assistant turn is mostly repeated 10-grams (value: share covered)",
    }

    def keep(self, record: dict) -> tuple[bool, str, Any]:
        c = self.config
        turns = [m for m in record["messages"] if m.get("role") in ("user", "assistant")]
        contents = [m.get("content") or "" for m in turns]
        answers = [m.get("content") or "" for m in turns if m["role"] == "assistant"]
        all_text = "\n".join(contents)
        if c.min_turns is not None and len(turns) < c.min_turns:
            return False, "too_few_turns", len(turns)
        if c.max_turns is not None and len(turns) > c.max_turns:
            return False, "too_many_turns", len(turns)
        if c.min_chars is not None and len(all_text) < c.min_chars:
            return False, "too_short", len(all_text)
        if c.max_chars is not None and len(all_text) > c.max_chars:
            return False, "too_long", len(all_text)
        if c.drop_empty_response and (not answers or not answers[-1].strip()):
            return False, "empty_response", 0
        if c.min_alnum_ratio is not None:
            ratio = alnum_ratio(all_text)
            if ratio < c.min_alnum_ratio:
                return False, "low_alnum_ratio", round(ratio, 4)
        if c.min_cjk_ratio is not None or c.max_cjk_ratio is not None:
            ratio = cjk_ratio(all_text)
            if c.min_cjk_ratio is not None and ratio < c.min_cjk_ratio:
                return False, "low_cjk_ratio", round(ratio, 4)
            if c.max_cjk_ratio is not None and ratio > c.max_cjk_ratio:
                return False, "high_cjk_ratio", round(ratio, 4)
        if c.drop_truncated_response and answers and looks_truncated(answers[-1], last_request(turns)):
            return False, "truncated_response", answers[-1].rstrip()[-40:]
        if c.drop_refusals:
            lowered = "\n".join(answers).lower()
            for phrase in c.refusal_phrases:
                if phrase in lowered:
                    return False, "refusal", phrase
        if c.max_copy_similarity is not None and answers:
            similarity = jaccard(tokens(first_user(record)), tokens(answers[0]))
            if similarity >= c.max_copy_similarity:
                return False, "instruction_copy", round(similarity, 4)
        for answer in answers:
            verdict = self.repetition(answer)
            if verdict is not None:
                return False, *verdict
        return True, "", None

    def repetition(self, answer: str) -> tuple[str, float] | None:
        """The first Gopher repetition rule the answer fails, with its measurement; None if it passes."""
        c = self.config
        answer = prose(answer)
        words = tokens(answer)
        if len(words) < c.min_repetition_tokens:
            return None
        if c.max_dup_line_char_ratio is not None:
            ratio = dup_line_char_ratio(answer)
            if ratio > c.max_dup_line_char_ratio:
                return "repeated_lines", round(ratio, 4)
        if c.max_top_2gram_ratio is not None:
            ratio = top_ngram_ratio(words, 2)
            if ratio > c.max_top_2gram_ratio:
                return "repeated_2gram", round(ratio, 4)
        if c.max_dup_10gram_ratio is not None:
            ratio = dup_ngram_ratio(words, 10)
            if ratio > c.max_dup_10gram_ratio:
                return "repeated_10grams", round(ratio, 4)
        return None


def alnum_ratio(text: str) -> float:
    """Share of letters/digits (any script) among non-space characters."""
    visible = len(text) - sum(map(str.isspace, text))
    return sum(map(str.isalnum, text)) / visible if visible else 0.0


def last_request(turns: list[dict]) -> str:
    """The user turn the last assistant turn answers ("" when there is none)."""
    answered = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=0)
    return next((m.get("content") or "" for m in reversed(turns[:answered]) if m["role"] == "user"), "")


def looks_truncated(answer: str, request: str = "") -> bool:
    """An odd number of code fences (the block never closed), or a last line of prose ending in a letter or a
    comma: 4+ words (or 20+ characters of CJK), not a list item, heading or hashtag, not under a letter's
    closing ("Best regards,"), not a short line under a bare short line (verse, a signature's name and
    title, quiz answers: lines that never end in a full stop), and not a headline (``reads_as_headline``)."""
    if len(_OPEN_FENCE.findall(answer)) % 2:
        return True
    lines = [line for line in answer.rstrip().splitlines() if line.strip()]
    last_line = lines[-1] if lines else ""
    if not last_line or last_line[-1] in _FINISHED_END or _LIST_ITEM.match(last_line):
        return False
    words = last_line.split()
    if words[-1].startswith("#") or any(_CLOSING.match(line) for line in lines[-6:-1]):
        return False
    if len(words) <= _SHORT_LINE_WORDS and len(lines) > 1 and is_bare_short_line(lines[-2]):
        return False
    long_enough = len(words) >= 4 or (len(last_line) >= 20 and cjk_ratio(last_line) > 0.5)
    if last_line[-1] in ",，、":
        return long_enough
    return long_enough and last_line[-1].isalpha() and not reads_as_headline(answer, request)


def reads_as_headline(answer: str, request: str) -> bool:
    """A one-line answer complete without a full stop: a line of at most 8 words (a closing: "Have a nice day",
    a name), or a headline or byline answering a request of like length (a third to three times its tokens)
    that lacks a full stop too (a headline to translate). Either way not ending on a word a sentence cannot end
    on, with no sentence ending inside and brackets closed. (Cuts are long paragraphs, or land mid-phrase.)"""
    line = answer.strip()
    words = line.split()
    chinese = cjk_ratio(line) > 0.5
    length = len(line) / 2 if chinese else len(words)  # in words, about two CJK characters a word
    if "\n" in line or length > _HEADLINE_WORDS:
        return False
    if _SENTENCE_END_INSIDE.search(line) or any(line.count(a) != line.count(b) for a, b in _PAIRS):
        return False
    if (line[-1] in _OPEN_ENDINGS_ZH) if chinese else (words[-1].rstrip(_CLOSERS).lower() in _OPEN_ENDINGS_EN):
        return False
    if length <= _SHORT_LINE_WORDS:
        return True
    # a longer line counts only as the counterpart of a request of like length that lacks a full stop too
    asked = request.rstrip().rstrip(_CLOSERS)
    size = len(tokens(asked))
    return bool(asked) and asked[-1] not in ".!?。！？…" and size / 3 <= len(tokens(line)) <= 3 * size


def is_bare_short_line(line: str) -> bool:
    """A short line with no full stop, colon or comma that is not a heading, list item or code fence: a verse
    line, a name or title, a quiz answer. (Under a heading, a short unfinished line is a cut paragraph.)"""
    line = line.strip()
    return (len(line.split()) <= _SHORT_LINE_WORDS and line[-1] not in ".!?。！？:：,，"
            and not _LIST_ITEM.match(line) and not line.startswith("```"))


def prose(answer: str) -> str:
    """The answer without its fenced code blocks: code repeats lines legitimately."""
    return _CODE_BLOCK.sub("", answer)


def jaccard(a: list[str], b: list[str]) -> float:
    """Jaccard similarity of two token sets (0 when either is empty)."""
    set_a, set_b = set(a), set(b)
    return len(set_a & set_b) / len(set_a | set_b) if set_a and set_b else 0.0


def dup_line_char_ratio(text: str) -> float:
    """Share of characters (of non-blank lines) in lines that occur more than once (normalised)."""
    lines = [normalised(line) for line in text.splitlines() if line.strip()]
    counts = Counter(lines)
    total = sum(map(len, lines))
    return sum(len(line) for line in lines if counts[line] > 1) / total if total else 0.0


def top_ngram_ratio(words: list[str], n: int) -> float:
    """Characters in all occurrences of the most frequent n-gram over all word characters (Gopher)."""
    grams = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return sum(map(len, gram)) * count / sum(map(len, words))


def dup_ngram_ratio(words: list[str], n: int) -> float:
    """Share of word characters covered by n-grams that occur more than once (Gopher)."""
    windows = list(zip(*(words[i:] for i in range(n)), strict=False))
    counts = Counter(windows)
    covered = bytearray(len(words))
    for start, window in enumerate(windows):
        if counts[window] > 1:
            covered[start:start + n] = b"\x01" * n
    total = sum(map(len, words))
    return sum(len(w) for w, hit in zip(words, covered, strict=True) if hit) / total if total else 0.0
