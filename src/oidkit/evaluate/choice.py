"""Multiple choice by log-likelihood: the option whose continuation the model finds most likely wins.

Prompts follow MMLU / CMMLU: an optional header and k solved examples from the ``dev`` split, then the
question with lettered options and "Answer:" (Chinese: "答案是："); each option's continuation is its
letter, as in the original MMLU and CMMLU evaluation code. Accuracy comes with a Wilson 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oidkit.core.stats import wilson_interval
from oidkit.text import has_cjk

LETTERS = "ABCDEFGHIJ"


@dataclass
class ChoiceExample:
    """One multiple-choice question; ``answer`` is the index of the right option."""

    id: str
    question: str
    choices: list[str]
    answer: int
    subject: str = ""
    shots: list[ChoiceExample] = field(default_factory=list)


def format_question(example: ChoiceExample, with_answer: bool) -> str:
    """The question, its lettered options and the answer cue (plus the answer letter for a solved shot)."""
    chinese = has_cjk(example.question)
    lines = [("题目：" if chinese else "") + example.question.strip()]
    lines += [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(example.choices)]
    cue = "答案是：" if chinese else "Answer:"
    if with_answer:
        cue += ("" if chinese else " ") + LETTERS[example.answer]
    return "\n".join([*lines, cue])


def build_prompt(example: ChoiceExample) -> str:
    """The k-shot prompt ending in the answer cue; the options' continuations are appended to it."""
    chinese = has_cjk(example.question)
    subject = example.subject.replace("_", " ")
    if chinese:
        header = f"以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n" if subject else ""
    else:
        header = f"The following are multiple choice questions (with answers) about {subject}.\n\n" if subject else ""
    shots = "".join(format_question(shot, with_answer=True) + "\n\n" for shot in example.shots)
    return header + shots + format_question(example, with_answer=False)


def continuation_logprobs(model: Any, tokenizer: Any, context: str, continuations: list[str]) -> list[float]:
    """Sum of log-probabilities of each continuation's tokens after ``context``, in one padded batch.

    Context and continuation are tokenized together (as the model would see them) and the continuation's
    tokens are those starting at or after the end of the context, by character offset.
    """
    import torch

    rows, masks = [], []
    for continuation in continuations:
        encoded = tokenizer(context + continuation, add_special_tokens=False, return_offsets_mapping=True)
        rows.append(list(encoded["input_ids"]))
        masks.append([start >= len(context) for start, _ in encoded["offset_mapping"]])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention).logits.float(), dim=-1)
    scores = []
    for row, (ids, mask) in enumerate(zip(rows, masks, strict=True)):
        # the token at position t is predicted by the logits at t-1
        scores.append(sum(float(logprobs[row, t - 1, ids[t]]) for t in range(1, len(ids)) if mask[t]))
    return scores


def evaluate_choices(model: Any, tokenizer: Any, examples: list[ChoiceExample],
                     progress: Callable[[int], None] | None = None) -> dict:
    """Accuracy, its Wilson interval and per-question scores of a multiple-choice set."""
    outputs, correct = [], 0
    for example in examples:
        # a leading space for English ("Answer: B"), none after the Chinese full-width colon
        space = "" if has_cjk(example.question) else " "
        letters = [space + LETTERS[i] for i in range(len(example.choices))]
        scores = continuation_logprobs(model, tokenizer, build_prompt(example), letters)
        predicted = max(range(len(scores)), key=scores.__getitem__)
        correct += predicted == example.answer
        outputs.append({"id": example.id, "question": example.question, "predicted": LETTERS[predicted],
                        "answer": LETTERS[example.answer], "correct": predicted == example.answer,
                        "logprobs": scores})
        if progress:
            progress(1)
    low, high = wilson_interval(correct, len(examples))
    return {"metrics": {"accuracy": correct / len(examples) if examples else 0.0, "ci95_low": low,
                        "ci95_high": high, "n": len(examples)}, "examples": outputs}
