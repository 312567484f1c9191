"""Text metrics: BLEU and chrF (sacrebleu), ROUGE (rouge-score), exact match / token F1, GSM8K, Wilson CI.

BLEU and chrF are sacrebleu's corpus scores, computed by sacrebleu itself; Chinese references switch
sacrebleu to its ``zh`` tokenizer. ROUGE is rouge-score's ``RougeScorer`` with one change of tokenizer:
rouge-score keeps only ``[a-z0-9]`` runs and so drops every CJK character (two identical Chinese strings
score 0). Our tokenizer keeps those runs and makes every CJK character a token of its own (or, with
``chinese="jieba"``, a jieba word), so English scores equal rouge-score's and Chinese scores mean something.
Exact match and token F1 follow the SQuAD evaluation script (lower-case, drop punctuation and English
articles, squeeze spaces); CJK text is compared per character and Unicode punctuation is dropped too.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter

from oidkit.text import CJK_CLASS, CJK_RE, ROUGE_TOKEN_RE, has_cjk

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_SQUAD_TOKEN_RE = re.compile(f"[{CJK_CLASS}]|[^\\s{CJK_CLASS}]+")
_NUMBER_RE = re.compile(r"-?[\d,]*\.?\d+")


def bleu_tokenizer(references: list[str]) -> str:
    """sacrebleu's tokenizer for these references: ``zh`` when any is Chinese, else its default ``13a``."""
    return "zh" if any(has_cjk(r) for r in references) else "13a"


def bleu(predictions: list[str], references: list[str]) -> float:
    """sacrebleu corpus BLEU (0-100), tokenized by :func:`bleu_tokenizer`."""
    import sacrebleu

    return sacrebleu.corpus_bleu(predictions, [references], tokenize=bleu_tokenizer(references)).score


def chrf(predictions: list[str], references: list[str]) -> float:
    """sacrebleu corpus chrF (0-100), character n-grams, so it needs no tokenizer for Chinese."""
    import sacrebleu

    return sacrebleu.corpus_chrf(predictions, [references]).score


class RougeTokenizer:
    """rouge-score's tokens for Latin text (lower-cased ``[a-z0-9]+`` runs) plus CJK characters or jieba words.

    Passed to ``rouge_score.rouge_scorer.RougeScorer(tokenizer=...)``, which only calls ``tokenize``.
    """

    def __init__(self, chinese: str = "char"):
        if chinese not in ("char", "jieba"):
            raise ValueError(f"chinese must be 'char' or 'jieba', got {chinese!r}")
        self.chinese = chinese

    def tokenize(self, text: str) -> list[str]:
        text = text.lower()
        if self.chinese == "char" or not has_cjk(text):
            return ROUGE_TOKEN_RE.findall(text)
        import jieba

        tokens = []
        for word in jieba.lcut(text):
            tokens.extend([word] if CJK_RE.fullmatch(word[0]) else ROUGE_TOKEN_RE.findall(word))
        return tokens


def rouge(predictions: list[str], references: list[str], chinese: str = "char") -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (0-1) over pairs, by rouge-score with CJK-aware tokens."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=RougeTokenizer(chinese))
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    return {name: total / max(len(predictions), 1) for name, total in totals.items()}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, no punctuation (ASCII and Unicode), no a/an/the, single spaces."""
    text = "".join(
        ch for ch in text.lower() if ch not in string.punctuation and not unicodedata.category(ch).startswith("P")
    )
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """Normalised tokens: whitespace words, with each CJK character a token of its own."""
    return _SQUAD_TOKEN_RE.findall(normalize_answer(text))


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1; when either side has no tokens, 1.0 if both are empty else 0.0 (SQuAD v2)."""
    predicted, expected = answer_tokens(prediction), answer_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def gsm8k_reference(answer: str) -> str:
    """The number after ``####`` in a GSM8K answer, without thousands separators."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


def extract_number(generation: str) -> str | None:
    """The number a model answered: after its own ``####`` if it wrote one, else the last number in the text."""
    tail = generation.rsplit("####", 1)[-1] if "####" in generation else generation
    numbers = _NUMBER_RE.findall(tail)
    if not numbers:
        return None
    return numbers[0 if "####" in generation else -1].replace(",", "")


def numbers_equal(predicted: str | None, reference: str) -> bool:
    """Numeric equality (``18`` == ``18.0``); False when nothing was predicted."""
    if predicted is None:
        return False
    try:
        return math.isclose(float(predicted), float(reference), rel_tol=0, abs_tol=1e-9)
    except ValueError:
        return predicted == reference

