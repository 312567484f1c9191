"""LLM-as-judge pairwise comparison, asked in both orders to cancel the judge's position bias.

For each question the judge sees the two answers twice, once as (A=first model, B=second) and once
swapped. Each verdict votes +1 for the first model, -1 for the second, 0 for a tie or an unreadable
verdict; the sum decides win (> 0), tie (0) or loss (< 0) for the first model. A judge that always
prefers position A therefore produces only ties. Verdict format as in MT-Bench: ``[[A]]``, ``[[B]]``
or ``[[C]]`` (tie).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# asks the judge for a batch of conversations, returns one reply text per conversation, in order
JudgeFn = Callable[[list[list[dict]]], list[str]]

JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. Choose the assistant that follows the user's instructions and "
    "answers the user's question better, considering helpfulness, relevance, accuracy, depth and level of "
    "detail. Do not let the order in which the responses were presented, their length or the assistants' "
    "names influence your evaluation. After a short explanation, output your final verdict strictly in this "
    'format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
_VERDICT_RE = re.compile(r"\[\[([ABC])\]\]")


def judge_prompt(question: str, answer_a: str, answer_b: str) -> list[dict]:
    """The chat messages asking the judge to compare answer A and answer B to ``question``."""
    user = (f"[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n"
            f"[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n"
            "[The End of Assistant B's Answer]")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> str | None:
    """``"A"``, ``"B"``, ``"C"`` (tie) from the last ``[[X]]`` in the reply, or ``None`` when there is none."""
    found = _VERDICT_RE.findall(reply)
    return found[-1] if found else None


def pairwise(questions: list[str], answers_first: list[str], answers_second: list[str], judge: JudgeFn) -> dict:
    """Win/tie/loss of the first model against the second, with both verdicts per question."""
    prompts = []
    for question, first, second in zip(questions, answers_first, answers_second, strict=True):
        prompts.append(judge_prompt(question, first, second))
        prompts.append(judge_prompt(question, second, first))
    replies = judge(prompts)
    counts = {"win": 0, "tie": 0, "loss": 0, "unparsable_verdicts": 0}
    per_question = []
    for i in range(len(questions)):
        in_order, swapped = parse_verdict(replies[2 * i]), parse_verdict(replies[2 * i + 1])
        vote = {"A": 1, "B": -1}.get(in_order, 0) + {"A": -1, "B": 1}.get(swapped, 0)
        outcome = "win" if vote > 0 else "loss" if vote < 0 else "tie"
        counts[outcome] += 1
        counts["unparsable_verdicts"] += (in_order is None) + (swapped is None)
        per_question.append({"verdict_in_order": in_order, "verdict_swapped": swapped, "outcome": outcome})
    total = max(len(questions), 1)
    counts["win_rate"] = (counts["win"] + 0.5 * counts["tie"]) / total
    return {"summary": counts, "per_question": per_question}


def judge_from_backend(model: str, endpoint: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                       max_tokens: int = 512) -> JudgeFn:
    """A judge function backed by a local model, or by ``model`` at an OpenAI-compatible ``endpoint``.

    A judge request that fails for good replies with empty text (an unparsable verdict, counted); an unusable
    endpoint raises ``BackendError``.
    """
    # the generation backends live with synthesis, which already talks to endpoints with retries and caching
    from oidkit.models.backends import GenerationRequest, make_backend

    options = {"api_key_env": api_key_env} if endpoint else {}
    backend = make_backend(model, endpoint, **options)

    def ask(conversations: list[list[dict]]) -> list[str]:
        params = {"temperature": 0.0, "max_tokens": max_tokens}
        return [g.text for g in backend.generate([GenerationRequest(c, params) for c in conversations])]

    return ask
