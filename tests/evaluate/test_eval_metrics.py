"""Metrics against the reference libraries (sacrebleu, rouge-score) and hand-computed values, Chinese included."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from oidkit.core.stats import wilson_interval
from oidkit.evaluate import metrics

EN_PRED = ["The cat sat on the mat.", "A quick brown fox jumps over the dog!", ""]
EN_REF = ["The cat is sitting on the mat.", "The quick brown fox jumped over the lazy dog.", "Nothing here."]
ZH_PRED = ["今天天气很好，我们去公园散步吧。", "机器学习是人工智能的一个分支。", ""]
ZH_REF = ["今天天气不错，我们去公园走走。", "机器学习是人工智能的分支之一。", "空的预测。"]


def test_bleu_and_chrf_equal_sacrebleu_corpus_scores_in_english_and_chinese():
    assert metrics.bleu(EN_PRED, EN_REF) == sacrebleu.corpus_bleu(EN_PRED, [EN_REF]).score
    assert metrics.chrf(EN_PRED, EN_REF) == sacrebleu.corpus_chrf(EN_PRED, [EN_REF]).score
    zh_bleu = sacrebleu.corpus_bleu(ZH_PRED, [ZH_REF], tokenize="zh").score
    assert metrics.bleu(ZH_PRED, ZH_REF) == zh_bleu
    assert zh_bleu != sacrebleu.corpus_bleu(ZH_PRED, [ZH_REF], tokenize="13a").score  # the zh tokenizer mattered
    assert metrics.chrf(ZH_PRED, ZH_REF) == sacrebleu.corpus_chrf(ZH_PRED, [ZH_REF]).score
    assert metrics.bleu(["同一句话。"], ["同一句话。"]) == pytest.approx(100.0)


def test_rouge_equals_rouge_score_on_english():
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"])
    ours = metrics.rouge(EN_PRED, EN_REF)
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = sum(scorer.score(r, p)[name].fmeasure for p, r in zip(EN_PRED, EN_REF, strict=True)) / len(EN_PRED)
        assert ours[name] == pytest.approx(expected, abs=1e-12)


def test_rouge_scores_chinese_by_character_where_rouge_score_gives_zero():
    assert RougeScorer(["rougeL"]).score("机器学习", "机器学习")["rougeL"].fmeasure == 0.0
    assert metrics.rouge(["机器学习"], ["机器学习"]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    # 今天很好 vs 今天不好: 3 of 4 characters shared in order; bigrams 今天, 天很, 很好 vs 今天, 天不, 不好
    scores = metrics.rouge(["今天很好"], ["今天不好"])
    assert scores["rouge1"] == pytest.approx(0.75)
    assert scores["rougeL"] == pytest.approx(0.75)
    assert scores["rouge2"] == pytest.approx(1 / 3)
    assert metrics.rouge([""], ["今天"])["rougeL"] == 0.0


def test_rouge_with_jieba_counts_words():
    tokens = metrics.RougeTokenizer("jieba").tokenize("我爱北京天安门 GPU 2")
    assert "北京" in tokens and "gpu" in tokens and "2" in tokens
    assert metrics.rouge(["我爱北京"], ["我爱北京"], chinese="jieba")["rouge2"] == 1.0


def test_exact_match_and_f1_follow_squad_normalisation():
    assert metrics.exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert metrics.exact_match("Paris", "London") == 0.0
    # pred tokens: paris france; ref: paris -> p=1/2, r=1, F1 = 2/3
    assert metrics.token_f1("Paris, France", "the Paris") == pytest.approx(2 / 3)
    assert metrics.token_f1("", "") == 1.0
    assert metrics.token_f1("", "Paris") == 0.0
    assert metrics.exact_match("", "Paris") == 0.0


def test_exact_match_and_f1_compare_chinese_per_character():
    assert metrics.exact_match("北京。", "北京") == 1.0
    # 北京市 vs 北京: common 2, p=2/3, r=1 -> F1 = 0.8
    assert metrics.token_f1("北京市", "北京") == pytest.approx(0.8)
    assert metrics.answer_tokens("我在 Beijing 工作") == ["我", "在", "beijing", "工", "作"]


def test_gsm8k_numbers():
    assert metrics.gsm8k_reference("so 3*6=18\n#### 1,018") == "1018"
    assert metrics.extract_number("First 5 then 12, so the answer is 18.") == "18"
    assert metrics.extract_number("#### 42 and then 7 more words") == "42"
    assert metrics.extract_number("no digits at all") is None
    assert metrics.numbers_equal("18.0", "18")
    assert not metrics.numbers_equal(None, "18")
    assert not metrics.numbers_equal("17", "18")


def test_wilson_interval_matches_hand_computed_values():
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    # 0 of 10: centre = z^2/20 / (1 + z^2/10), upper = 2 * centre
    z2 = 1.959964**2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(2 * (z2 / 20) / (1 + z2 / 10)))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert not math.isnan(wilson_interval(10, 10)[0])


def test_generation_metrics_come_from_the_registry_in_report_order(monkeypatch):
    from oidkit.evaluate import scores
    from oidkit.evaluate.run import EvalOptions, score_generations
    from oidkit.evaluate.scores.base import REGISTRY, register
    from oidkit.evaluate.tasks import GenerationExample

    examples = [GenerationExample("a", [{"role": "user", "content": "q"}], "the cat sat"),
                GenerationExample("b", [{"role": "user", "content": "q"}], "a dog")]
    result = score_generations("generation", examples, ["the cat sat", "no"], EvalOptions())
    assert list(result["metrics"]) == ["bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "f1", "n"]
    assert result["metrics"]["exact_match"] == 0.5 and result["metrics"]["n"] == 2
    assert [list(row)[4:] for row in result["examples"]] == [["rougeL", "exact_match", "f1"]] * 2

    # A new metric is one registered function and one entry in TASK_METRICS.
    monkeypatch.setitem(REGISTRY, "length", None)  # so the entry goes again after the test
    register("length")(lambda rows, options: {"mean_length": sum(len(r["output"]) for r in rows) / len(rows)})
    monkeypatch.setitem(scores.TASK_METRICS, "generation", ["length"])
    assert score_generations("generation", examples, ["abcd", "ab"], EvalOptions())["metrics"] == {
        "mean_length": 3.0, "n": 2}


def test_compare_gives_every_per_item_metric_a_paired_interval():
    from oidkit.evaluate.intervals import compare_intervals, intervals_markdown

    def result(outputs, correct):
        return {"qa": {"kind": "generation", "metrics": {}, "examples": [
            {"id": str(i), "prompt": "p", "reference": "the cat sat on the mat", "output": o, "f1": c, "correct": k}
            for i, (o, c, k) in enumerate(zip(outputs, correct, [True, False] * 20, strict=False))]}}

    a = result(["a dog"] * 20, [0.0] * 20)
    b = result(["the cat sat on the mat"] * 20, [1.0] * 20)
    report = {"models": ["A", "B"], "results": {"A": a, "B": b}}
    intervals = compare_intervals(report)["qa"]
    assert set(intervals) == {"bleu_sentence", "chrf_sentence", "f1", "correct"}
    assert intervals["f1"] == {"diff": 1.0, "low": 1.0, "high": 1.0, "excludes_zero": True, "n": 20}
    assert intervals["correct"]["diff"] == 0.0 and not intervals["correct"]["excludes_zero"]
    assert intervals["bleu_sentence"]["low"] > 50
    table = intervals_markdown(compare_intervals(report), ["A", "B"])
    assert "| f1 | 20 | +1.0000 | [+1.0000, +1.0000] | yes |" in table
