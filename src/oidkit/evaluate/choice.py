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
Encoded = list[tuple[list[int], list[bool]]]  # per continuation: its text's token ids, which are the continuation's


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


def encode_continuations(tokenizer: Any, context: str, continuations: list[str]) -> Encoded:
    """Each ``context + continuation`` tokenized together (as the model would see it), with a mask of the
    continuation's tokens: those starting at or after the end of the context, by character offset."""
    encoded = tokenizer([context + continuation for continuation in continuations], add_special_tokens=False,
                        return_offsets_mapping=True)
    return [(list(ids), [start >= len(context) for start, _ in offsets])
            for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)]


def continuation_logprobs(model: Any, tokenizer: Any, context: str, continuations: list[str],
                          encoded: Encoded | None = None) -> list[float]:
    """Sum of log-probabilities of each continuation's tokens after ``context``, in one padded batch.

    ``encoded`` is their :func:`encode_continuations` when the caller already has it.
    """
    import torch

    from oidkit.models.device import model_device

    rows, masks = zip(*(encoded or encode_continuations(tokenizer, context, continuations)), strict=True)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = model_device(model)
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention).logits.float(), dim=-1)
    scores = []
    for row, (ids, mask) in enumerate(zip(rows, masks, strict=True)):
        # the token at position t is predicted by the logits at t-1
        scores.append(sum(float(logprobs[row, t - 1, ids[t]]) for t in range(1, len(ids)) if mask[t]))
    return scores


class PrefixCache:
    """The KV cache of the last scored prompt, so the next prompt runs only the tokens after the shared part.

    Questions of one subject share the header and the few-shot examples (~500 tokens of a ~550-token CMMLU
    prompt): they are computed once and cut back to the common token prefix before each new question.
    Comparing token ids (not text) keeps this exact whatever the tokenizer does at the boundary.
    """

    def __init__(self) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache()
        self.ids: list[int] = []

    def last_logits(self, model: Any, ids: list[int]) -> Any:
        """The logits after the last of ``ids``, running only the tokens not already in the cache."""
        import torch

        from oidkit.models.device import model_device

        keep = 0
        while keep < min(len(self.ids), len(ids) - 1) and self.ids[keep] == ids[keep]:
            keep += 1
        if len(self.ids) > keep:
            self.cache.crop(keep - len(self.ids))
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids[keep:]], device=model_device(model)), cache=self.cache,
                        use_cache=True, logits_to_keep=1)
        self.ids = list(ids)
        return out.logits[0, -1].float()


def single_token_logprobs(model: Any, encoded: Encoded, prefix: PrefixCache) -> list[float] | None:
    """The same scores as ``continuation_logprobs`` over the same ``encoded`` continuations from one pass over
    their shared context, when each is one token after the same context tokens (a letter after "Answer:");
    None when they are not."""
    import torch

    context_ids = encoded[0][0][:-1]
    # the continuation must be exactly the last token, after the same context tokens in every row
    if not context_ids or any(ids[:-1] != context_ids or mask.count(True) != 1 or not mask[-1]
                              for ids, mask in encoded):
        return None
    logprobs = torch.log_softmax(prefix.last_logits(model, context_ids), dim=-1)
    return [float(logprobs[ids[-1]]) for ids, _ in encoded]


def evaluate_choices(model: Any, tokenizer: Any, examples: list[ChoiceExample],
                     progress: Callable[[int], None] | None = None) -> dict:
    """Accuracy, its Wilson interval and per-question scores of a multiple-choice set.

    Each option's letter is one token after the prompt, so one forward pass scores all options, and the
    prompt's shared few-shot prefix is reused from the previous question (``PrefixCache``); other
    continuations fall back to ``continuation_logprobs``. Both give the same log-probabilities (to 1e-5).
    """
    prefix = PrefixCache()
    outputs, correct = [], 0
    for example in examples:
        # a leading space for English ("Answer: B"), none after the Chinese full-width colon
        space = "" if has_cjk(example.question) else " "
        letters = [space + LETTERS[i] for i in range(len(example.choices))]
        prompt = build_prompt(example)
        encoded = encode_continuations(tokenizer, prompt, letters)
        scores = single_token_logprobs(model, encoded, prefix)
        if scores is None:
            scores = continuation_logprobs(model, tokenizer, prompt, letters, encoded)
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
