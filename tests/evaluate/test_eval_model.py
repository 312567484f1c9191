"""Perplexity, multiple choice, task detection, the judge and the comparison report on the tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from oidkit.core.chat import encode_record
from oidkit.errors import InputError
from oidkit.evaluate.choice import LETTERS, ChoiceExample, build_prompt, continuation_logprobs, evaluate_choices
from oidkit.evaluate.judge import pairwise, parse_verdict
from oidkit.evaluate.perplexity import perplexity
from oidkit.evaluate.run import EvalOptions, compare_models, write_report
from oidkit.evaluate.tasks import load_task
from oidkit.models import load_model

RECORDS = [
    {"id": "r1", "messages": [{"role": "user", "content": "What is two plus two?"},
                              {"role": "assistant", "content": "It is four."}]},
    {"id": "r2", "messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "你好"},
                              {"role": "assistant", "content": "你好，世界！"},
                              {"role": "user", "content": "The quick brown fox?"},
                              {"role": "assistant", "content": "Jumps over the lazy dog."}]},
]


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return load_model(tiny_model_path)


def hf_labels(record, tokenizer, train_on="assistant"):
    """Unshifted labels as transformers' loss expects them, from training's shifted ones."""
    encoded, _ = encode_record(record, tokenizer, tokenizer.chat_template, train_on=train_on)
    return encoded["input_ids"], [-100, *encoded["labels"][:-1]]


def test_perplexity_equals_transformers_loss_and_is_batch_invariant(tiny):
    model, tokenizer = tiny
    input_ids, labels = hf_labels(RECORDS[1], tokenizer)
    scored = tokenizer.decode([t for t, lab in zip(input_ids, labels, strict=True) if lab != -100])
    assert scored == "你好，世界！<|im_end|>\nJumps over the lazy dog.<|im_end|>\n"  # only the assistant turns
    expected = []
    for record in RECORDS:
        input_ids, labels = hf_labels(record, tokenizer)
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels])).loss
        expected.append(math.exp(float(loss)))
    single = perplexity(model, tokenizer, RECORDS, batch_size=1)
    batched = perplexity(model, tokenizer, RECORDS, batch_size=2)
    assert [r["perplexity"] for r in single["per_record"]] == pytest.approx(expected, rel=1e-5)
    assert [r["perplexity"] for r in batched["per_record"]] == pytest.approx(expected, rel=1e-4)
    assert batched["perplexity"] == pytest.approx(single["perplexity"], rel=1e-4)
    everything = perplexity(model, tokenizer, RECORDS, assistant_only=False)
    input_ids, labels = hf_labels(RECORDS[0], tokenizer, "all")
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels])).loss
    assert everything["per_record"][0]["perplexity"] == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert everything["tokens"] > single["tokens"]


def test_continuation_logprobs_equal_a_manual_sum(tiny):
    model, tokenizer = tiny
    context, continuation = "Answer:", " B"
    ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    n_context = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    manual = sum(float(logprobs[t - 1, ids[t]]) for t in range(n_context, len(ids)))
    assert continuation_logprobs(model, tokenizer, context, [continuation, " A"])[0] == pytest.approx(manual, abs=1e-4)


def test_multiple_choice_picks_the_most_likely_letter(tiny):
    model, tokenizer = tiny
    examples = [ChoiceExample(str(i), "2+2?", ["3", "4", "5", "6"], answer=i) for i in range(4)]
    result = evaluate_choices(model, tokenizer, examples)
    # the prompt is identical, so one letter wins every time and exactly one of the four answers is right
    assert len({e["predicted"] for e in result["examples"]}) == 1
    assert result["metrics"]["accuracy"] == 0.25
    assert result["metrics"]["ci95_low"] < 0.25 < result["metrics"]["ci95_high"]


def per_option_scores(model, tokenizer, examples):
    """The reference: every option's whole prompt + letter run through the model, one padded batch each."""
    scores = []
    for example in examples:
        space = "" if any("\u4e00" <= c <= "\u9fff" for c in example.question) else " "
        letters = [space + LETTERS[i] for i in range(len(example.choices))]
        scores.append(continuation_logprobs(model, tokenizer, build_prompt(example), letters))
    return scores


def scored_tokens_per_call(model):
    """A forward pre-hook that records how many tokens each call runs; returns the list and the handle."""
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                             with_kwargs=True)
    return seen, handle


def english_and_chinese_examples():
    """Three English questions (the tiny tokenizer splits " A" in two) and three Chinese ones (one token)."""
    shots = [ChoiceExample(f"s{i}", f"Shot question {i}?", ["one", "two", "three", "four"], i % 4) for i in range(3)]
    english = [ChoiceExample(f"e{i}", f"What is {i} plus {i}?", ["0", str(2 * i), "7", "9"], 1, "math", shots)
               for i in range(3)]
    chinese_shots = [ChoiceExample("z", "你好吗？", ["好", "不好", "还行", "很好"], 0)]
    chinese = [ChoiceExample(f"c{i}", f"大型语言模型{i}？", ["甲", "乙", "丙", "丁"], i, "营养学", chinese_shots)
               for i in range(3)]
    return english + chinese


def test_one_pass_with_the_shared_prefix_gives_the_per_option_logprobs(tiny):
    model, tokenizer = tiny
    examples = english_and_chinese_examples()
    seen, handle = scored_tokens_per_call(model)
    try:
        result = evaluate_choices(model, tokenizer, examples)
    finally:
        handle.remove()
    expected = per_option_scores(model, tokenizer, examples)
    for row, reference in zip(result["examples"], expected, strict=True):
        assert row["logprobs"] == pytest.approx(reference, abs=1e-5)
        assert row["predicted"] == LETTERS[max(range(4), key=reference.__getitem__)]
    # one call per question; after the first Chinese question (its letter is one token after "答案是："), the
    # next ones of the subject run only their own tokens. The tiny tokenizer splits " A" in two, so the English
    # ones take the per-option batch: each runs its whole prompt plus the letter's two tokens
    prompt_lengths = [len(tokenizer(build_prompt(e), add_special_tokens=False)["input_ids"]) for e in examples]
    assert seen[:3] == [n + 2 for n in prompt_lengths[:3]]
    assert seen[3] == prompt_lengths[3] and all(seen[i] < prompt_lengths[i] / 2 for i in (4, 5))


class CountingTokenizer:
    """The tokenizer, noting every text it encodes."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts = tokenizer, []

    def __call__(self, text, **kwargs):
        self.texts += [text] if isinstance(text, str) else list(text)
        return self.tokenizer(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_multiple_choice_encodes_each_prompt_and_option_once(tiny):
    """Both the one-pass path (Chinese) and the per-option fallback (English) score the one encoding made."""
    model, tokenizer = tiny
    examples = english_and_chinese_examples()
    counting = CountingTokenizer(tokenizer)
    result = evaluate_choices(model, counting, examples)
    space = [" "] * 3 + [""] * 3
    assert sorted(counting.texts) == sorted(build_prompt(e) + s + LETTERS[i]
                                            for e, s in zip(examples, space, strict=True) for i in range(4))
    assert result == evaluate_choices(model, tokenizer, examples)


def test_cmmlu_prompts_name_the_subject_in_chinese(shared_data, tmp_path):
    nutrition = load_task(shared_data / "cmmlu" / "test" / "nutrition.csv", limit=1, shots=1).examples[0]
    assert build_prompt(nutrition).startswith("以下是关于营养学的单项选择题，请直接给出正确答案的选项。\n\n题目：")
    own = tmp_path / "test" / "my_quiz.csv"
    own.parent.mkdir()
    own.write_text(",Question,A,B,C,D,Answer\n0,一加一？,1,2,3,4,B\n", encoding="utf-8")
    assert build_prompt(load_task(own).examples[0]).startswith("以下是关于my quiz的单项选择题")


@pytest.mark.real
def test_smollm2_cmmlu_one_pass_equals_per_option_scoring(smollm2_gguf, shared_data):
    examples = load_task(shared_data / "cmmlu" / "test" / "computer_science.csv", limit=3).examples
    # float64 shows the two computations are the same; in float32 ~550-token prompts of different lengths
    # (prompt vs prompt + letter) round differently, by up to 3e-5 (measured), so there: the same choices
    for dtype, tolerance in (("float64", 1e-6), ("float32", 1e-4)):
        model, tokenizer = load_model("smollm2-135m-instruct", dtype=dtype)
        result = evaluate_choices(model, tokenizer, examples)
        expected = per_option_scores(model, tokenizer, examples)
        for row, reference in zip(result["examples"], expected, strict=True):
            assert row["logprobs"] == pytest.approx(reference, abs=tolerance)
            assert row["predicted"] == LETTERS[max(range(4), key=reference.__getitem__)]


def test_tasks_are_detected_from_the_real_files(shared_data):
    assert load_task(shared_data / "gsm8k_test.jsonl", limit=3).kind == "gsm8k"
    si = load_task(shared_data / "self_instruct_user_oriented_eval.jsonl", limit=3)
    assert si.kind == "generation" and si.examples[0].reference
    belle = load_task(shared_data / "belle_zh_eval_set.jsonl", limit=3)
    assert belle.kind == "generation" and belle.examples[0].reference
    cmmlu = load_task(shared_data / "cmmlu" / "test" / "nutrition.csv", limit=4, shots=2)
    assert cmmlu.kind == "choice" and len(cmmlu.examples) == 4 and len(cmmlu.examples[0].shots) == 2
    assert all(len(e.choices) == 4 for e in cmmlu.examples)


def test_unknown_fields_raise_an_input_error(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"foo": 1}\n')
    with pytest.raises(InputError, match="cannot tell the task"):
        load_task(path)
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer": "D"}\n')
    with pytest.raises(InputError, match="line 1"):
        load_task(path)


def test_judge_asks_both_orders_and_cancels_position_bias():
    questions = ["q1", "q2", "q3"]
    first = ["GOOD one", "bad", "GOOD too"]
    second = ["bad", "GOOD", "GOOD also"]
    seen = []

    def content_judge(prompts):  # prefers the answer containing GOOD, wherever it stands
        seen.extend(prompts)
        replies = []
        for p in prompts:
            text = p[1]["content"]
            a = text.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
            b = text.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
            replies.append("[[C]]" if ("GOOD" in a) == ("GOOD" in b) else "[[A]]" if "GOOD" in a else "I pick [[B]]")
        return replies

    result = pairwise(questions, first, second, content_judge)
    assert len(seen) == 6 and "GOOD one" in seen[0][1]["content"].split("Assistant B")[0]
    assert [q["outcome"] for q in result["per_question"]] == ["win", "loss", "tie"]
    assert result["summary"] == {"win": 1, "tie": 1, "loss": 1, "unparsable_verdicts": 0, "win_rate": 0.5}
    biased = pairwise(questions, first, second, lambda prompts: ["[[A]]"] * len(prompts))
    assert biased["summary"]["tie"] == 3
    garbled = pairwise(["q"], ["x"], ["y"], lambda prompts: ["no verdict", "[[A]]"])
    assert garbled["summary"]["loss"] == 1 and garbled["summary"]["unparsable_verdicts"] == 1
    assert parse_verdict("first [[A]] then finally [[B]]") == "B"


def test_compare_writes_side_by_side_reports(tiny_model_path, tmp_path):
    data = tmp_path / "held_out.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS))
    task = load_task(data)
    done: dict[str, list[int]] = {}  # label -> [items counted, total]

    def progress(label: str, n: int, total: int | None) -> None:
        done.setdefault(label, [0, total])[0] += n

    report = compare_models(str(tiny_model_path), str(tiny_model_path) + "/", [task],
                            EvalOptions(max_new_tokens=4, batch_size=2),
                            judge=lambda prompts: ["[[C]]"] * len(prompts), progress=progress)
    # one bar per model and step, each filled exactly: a shared label would count 4 of 2
    name = tiny_model_path.name
    assert done == {f"{who} {name}: held_out: {step}": [2, 2]
                    for who in "AB" for step in ("generate", "perplexity")}
    json_path, md_path = write_report(report, tmp_path / "out")
    saved = json.loads(json_path.read_text())
    a, b = saved["models"]
    assert saved["results"][a]["held_out"]["metrics"]["perplexity"] == pytest.approx(
        saved["results"][b]["held_out"]["metrics"]["perplexity"])
    assert len(saved["results"][a]["held_out"]["examples"]) == 2
    assert saved["judge"]["held_out"]["summary"]["tie"] == 2
    markdown = md_path.read_text()
    assert "| perplexity |" in markdown and "| rougeL |" in markdown and "| r2 |" in markdown
    same = saved["intervals"]["held_out"]  # the same model twice: every paired difference is exactly zero
    assert {"rougeL", "perplexity", "bleu_sentence", "chrf_sentence"} <= set(same)
    assert all(row["diff"] == 0 and not row["excludes_zero"] for row in same.values())
    assert "paired bootstrap 95% interval" in markdown


def test_eval_command_writes_reports_and_rejects_a_missing_model(tiny_model_path, tmp_path):
    from typer.testing import CliRunner

    from oidkit.cli import app

    data = tmp_path / "held_out.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS))
    result = CliRunner().invoke(app, ["eval", str(data), "--model", str(tiny_model_path), "--max-new-tokens", "3",
                                      "--limit", "1", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "| perplexity |" in result.output
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["results"][str(tiny_model_path)]["held_out"]["metrics"]["n"] == 1
    assert CliRunner().invoke(app, ["eval", str(data)]).exit_code == 2


def test_judge_through_an_openai_compatible_endpoint():
    """A scripted judge server on loopback: prefers whichever answer says GOOD, in either position."""
    from fastapi import FastAPI

    from conftest import serving
    from oidkit.evaluate.judge import judge_from_backend

    judge_app = FastAPI()

    @judge_app.post("/v1/chat/completions")
    def verdict(body: dict) -> dict:
        text = body["messages"][-1]["content"]
        first_answer = text.split("[The Start of Assistant B's Answer]")[0]
        reply = "Explanation. [[A]]" if "GOOD" in first_answer else "Explanation. [[B]]"
        return {"choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    with serving(judge_app) as url:
        judge = judge_from_backend("fake-judge", f"{url}/v1")
        result = pairwise(["q1", "q2"], ["GOOD", "meh"], ["meh", "GOOD"], judge)
    assert [q["outcome"] for q in result["per_question"]] == ["win", "loss"]
    assert result["per_question"][0] == {"verdict_in_order": "A", "verdict_swapped": "B", "outcome": "win"}


@pytest.mark.real
def test_smollm2_finds_natural_answers_likelier_than_shuffled_ones(smollm2_gguf):
    model, tokenizer = load_model("smollm2-135m-instruct")
    answer = "The capital of France is Paris. It is also the largest city in the country."
    shuffled = "country the Paris city. largest capital is in France of also It the is The"
    question = {"role": "user", "content": "What is the capital of France?"}
    records = [{"id": i, "messages": [question, {"role": "assistant", "content": text}]}
               for i, text in enumerate([answer, shuffled])]
    natural, scrambled = perplexity(model, tokenizer, records, batch_size=2)["per_record"]
    assert natural["perplexity"] * 5 < scrambled["perplexity"]


def test_mmlu_style_jsonl_and_forced_task(tmp_path, shared_data):
    path = tmp_path / "mmlu.jsonl"
    rows = [{"question": "2+2?", "choices": ["3", "4"], "answer": 1, "subject": "math"},
            {"question": "Sky colour?", "choices": ["green", "red", "blue"], "answer": "c"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(path)
    assert task.kind == "choice" and [e.answer for e in task.examples] == [1, 2]
    forced = load_task(shared_data / "gsm8k_test.jsonl", task="generation", limit=2)
    assert forced.kind == "generation" and forced.examples[0].reference
