"""The novelty filter makes exactly rouge-score's ROUGE-L decisions, and is correct for Chinese."""

from __future__ import annotations

import json
import random

import pytest
from rouge_score import rouge_scorer

from oidkit.synth.novelty import NoveltyFilter, filter_novel, lcs_length, rouge_l_f, rouge_tokens

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference_decisions(texts: list[str], threshold: float = 0.7) -> list[bool]:
    """Self-Instruct's loop: score each new text against the whole pool with rouge-score."""
    pool, keep = [], []
    for text in texts:
        ok = all(SCORER.score(text, p)["rougeL"].fmeasure <= threshold for p in pool)
        keep.append(ok)
        if ok:
            pool.append(text)
    return keep


def dp_lcs(a: list, b: list) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            same = a[i - 1] == b[j - 1]
            table[i][j] = table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def test_bit_parallel_lcs_equals_dynamic_programme():
    rng = random.Random(0)
    for _ in range(2000):
        a = rng.choices(range(6), k=rng.randint(0, 80))
        b = rng.choices(range(6), k=rng.randint(0, 80))
        assert lcs_length(a, b) == dp_lcs(a, b)


def test_rouge_l_equals_rouge_score_on_english():
    rng = random.Random(1)
    words = "the cat sat on a mat while dog and bird 42 Ran, ran!".split()
    for _ in range(2000):
        x = " ".join(rng.choices(words, k=rng.randint(0, 20)))
        y = " ".join(rng.choices(words, k=rng.randint(0, 20)))
        assert rouge_l_f(rouge_tokens(x), rouge_tokens(y)) == SCORER.score(x, y)["rougeL"].fmeasure


def test_threshold_is_strict_like_self_instruct():
    # 7 shared tokens in order out of 10 + 10: F = 2*7/20 = 0.7, which Self-Instruct keeps (> 0.7 drops).
    first = "a b c d e f g x1 x2 x3"
    second = "a b c d e f g y1 y2 y3"
    expected = SCORER.score(first, second)["rougeL"].fmeasure <= 0.7
    assert filter_novel([first, second]) == [True, expected]
    assert filter_novel([first, "a b c d e f g x1 y2 y3"]) == [True, False]  # F = 0.8


def test_chinese_is_scored_by_character():
    text = "请写一首关于大海的诗歌"
    assert SCORER.score(text, text)["rougeL"].fmeasure == 0.0  # why rouge-score cannot be used as is
    assert rouge_l_f(rouge_tokens(text), rouge_tokens(text)) == 1.0
    pool = NoveltyFilter()
    assert pool.add(text)
    assert not pool.add("请写一首关于大海的诗")  # one character fewer: a near copy
    assert pool.add("解释一下量子计算的基本原理")
    score, row = pool.most_similar("请你写一首关于大海的诗歌")
    assert row == 0 and score > 0.9


def instructions(path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["instruction"] for line in f]


def test_decisions_equal_rouge_score_on_real_seed_tasks(shared_data):
    seeds = instructions(shared_data / "self_instruct_seed_tasks.jsonl")
    evals = instructions(shared_data / "self_instruct_user_oriented_eval.jsonl")
    # Light rewrites of seeds are near duplicates that must be dropped, exactly as rouge-score would.
    texts = seeds[:80] + evals[:80] + [s.replace(" a ", " the ") for s in seeds[:40]]
    ours = filter_novel(texts)
    assert ours == reference_decisions(texts)
    assert 0 < sum(ours) < len(texts)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9])
def test_decisions_equal_rouge_score_at_any_threshold(threshold):
    rng = random.Random(threshold)
    words = "write explain list give a the poem story about sea cat code python why how".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(150)]
    assert filter_novel(texts, threshold) == reference_decisions(texts, threshold)
