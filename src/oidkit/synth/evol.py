"""Evol-Instruct (Xu et al., WizardLM 2023): rewrite instructions into harder or rarer ones, round by round.

Each round picks, for every instruction in the pool, one operation at random: five in-depth ones
(add a constraint, deepen, concretise, increase reasoning steps, complicate the input) or in-breadth
mutation (a new instruction of the same domain, rarer). The model rewrites the instruction, then answers
it. An evolution is eliminated, as in the paper, when

1. the model judges the new instruction equal to its parent (no information gain),
2. the answer says "sorry" and is short (< 80 words): the model could not handle it,
3. the answer is only punctuation and stop words,
4. the new instruction copies words of the evolving template ("given prompt", "#Rewritten Prompt#"...).

Eliminated evolutions go to the rejects with their reason and the parent stays in the pool; so do
evolutions whose rewrite, answer or judge request failed for good (``request_failed``, not cached, so a
rerun asks again). Each kept record keeps its lineage: parent id, root id, operation and round.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oidkit.models.backends import GenerationRequest
from oidkit.records import first_user, make_record, make_reject
from oidkit.synth.self_instruct import SynthResult, generate_after
from oidkit.text import script_language

if TYPE_CHECKING:
    from oidkit.core.progress import ProgressFn

DEPTH = {
    "add_constraints": "Add one more constraint or requirement to #The Given Prompt#.",
    "deepen": "If #The Given Prompt# asks about certain issues, increase the depth and breadth of the inquiry.",
    "concretise": "Replace general concepts in #The Given Prompt# with more specific ones.",
    "increase_reasoning": "If #The Given Prompt# can be solved with a few simple steps of thinking, rewrite it to "
                          "explicitly require multi-step reasoning.",
    "complicate_input": "Add a concrete input to #The Given Prompt# that makes it harder, such as a table, a piece "
                        "of code, a JSON object or a formula, and make the prompt refer to it.",
}
DEPTH_ZH = {
    "add_constraints": "给#给定指令#再增加一个约束或要求。",
    "deepen": "如果#给定指令#询问某些问题，请加深并拓宽提问的深度和广度。",
    "concretise": "把#给定指令#中的一般概念替换为更具体的概念。",
    "increase_reasoning": "如果#给定指令#只需简单思考就能解决，请改写为明确要求多步推理。",
    "complicate_input": "为#给定指令#加入一个更难的具体输入，例如表格、代码、JSON 或公式，并让指令引用它。",
}
OPERATIONS = [*DEPTH, "breadth"]

TEMPLATE_WORDS = {
    "en": ["#the given prompt#", "#rewritten prompt#", "#created prompt#", "given prompt", "rewritten prompt",
           "created prompt"],
    "zh": ["#给定指令#", "#改写后的指令#", "#新指令#", "给定指令", "改写后的指令"],
}
STOP_WORDS = set(
    "a an the and or but if then of to in on at by for with from as is are was were be been being it its this "
    "that these those i you he she we they me him her us them my your our their what which who whom whose how "
    "why when where there here not no yes so do does did done have has had can could will would shall should "
    "may might must also just very too".split()
) | set("的 了 和 是 在 我 你 他 她 它 们 这 那 有 就 也 都 而 及 与 或 啊 吧 呢 吗 嗯".split())


def depth_prompt(instruction: str, operation: str, language: str) -> str:
    """Ask the model to rewrite ``instruction`` with one in-depth method, adding 10 to 20 words at most."""
    if language == "zh":
        return ("请你扮演指令改写者，把给定的指令改写得更复杂一些，让强大的 AI 助手也更难应对，"
                "但改写后的指令必须合理、人类能够理解并作答。不要省略给定指令中的表格、代码或输入。\n"
                f"改写方法：{DEPTH_ZH[operation]}\n改写后的指令只能比原指令多 10 到 20 个字。"
                "“给定指令”“改写后的指令”这些词不能出现在改写结果中。\n"
                f"#给定指令#：\n{instruction}\n#改写后的指令#：\n")
    return ("I want you to act as a prompt rewriter. Rewrite the given prompt into a more complex version that "
            "makes famous AI systems work harder, while keeping it reasonable and answerable by humans. Do not "
            "drop non-text parts such as tables, code or the input of #The Given Prompt#.\n"
            f"Method: {DEPTH[operation]}\n"
            "Keep #Rewritten Prompt# concise: it may add only 10 to 20 words to #The Given Prompt#. The words "
            "'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' must not appear "
            f"in #Rewritten Prompt#.\n#The Given Prompt#:\n{instruction}\n#Rewritten Prompt#:\n")


def breadth_prompt(instruction: str, language: str) -> str:
    """Ask the model for a brand-new, rarer instruction of the same domain and similar length."""
    if language == "zh":
        return ("请你扮演指令创作者，从#给定指令#中获得灵感，创作一条全新的指令。新指令应与给定指令属于同一领域，"
                "但更少见；长度和复杂度与给定指令相近；必须合理、人类能够理解并作答。"
                "“给定指令”“新指令”这些词不能出现在新指令中。\n"
                f"#给定指令#：\n{instruction}\n#新指令#：\n")
    return ("I want you to act as a prompt creator. Draw inspiration from #The Given Prompt# to create a brand new "
            "prompt in the same domain but rarer, of similar length and complexity, reasonable and answerable by "
            "humans. The words '#The Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' must "
            f"not appear in #Created Prompt#.\n#The Given Prompt#:\n{instruction}\n#Created Prompt#:\n")


def equality_prompt(first: str, second: str, language: str) -> str:
    """Elimination rule 1: ask whether two instructions are equal in constraints, depth and breadth."""
    if language == "zh":
        return ("下面两条指令是否等价？等价指：1. 约束和要求相同；2. 提问的深度和广度相同。\n"
                f"第一条：{first}\n第二条：{second}\n你的判断（只回答“等价”或“不等价”，无需解释）：")
    return ("Here are two instructions. Are they equal to each other, meeting these requirements: 1. They have the "
            "same constraints and requirements. 2. They have the same depth and breadth of the inquiry.\n"
            f"The first prompt: {first}\nThe second prompt: {second}\n"
            "Your judgement (just answer: Equal or Not Equal, no need to explain the reason):")


def judged_equal(answer: str, language: str) -> bool:
    """The judge's verdict: "Equal" but not "Not Equal" (等价 but not 不等价)."""
    text = answer.strip().lower()
    if language == "zh":
        return "等价" in text and "不等价" not in text
    return "equal" in text and "not equal" not in text


def elimination_reason(parent: str, evolved: str, response: str, language: str) -> str | None:
    """Rules 2-4 of the paper (rule 1 needs the model); ``None`` when the evolution survives."""
    if not evolved.strip() or evolved.strip() == parent.strip():
        return "no_change"
    lowered = evolved.lower()
    if any(word in lowered for word in TEMPLATE_WORDS["en"] + TEMPLATE_WORDS["zh"]):
        return "copies_template"
    words = response.split() if language == "en" else list(re.sub(r"\s", "", response))
    if ("sorry" in response.lower() or "抱歉" in response or "对不起" in response) and len(words) < 80:
        return "sorry_response"
    # Words are latin/digit runs and single CJK characters; none at all means punctuation only.
    if all(t in STOP_WORDS for t in re.findall(r"[a-z0-9']+|[\u4e00-\u9fff]", response.lower())):
        return "stopwords_only_response"
    return None


def clean_rewrite(text: str) -> str:
    """The rewritten instruction without echoed headers or surrounding quotes."""
    text = re.sub(r"^\s*(#?(Rewritten|Created) Prompt#?\s*:|#?(改写后的指令|新指令)#?\s*[:：])", "", text.strip(),
                  flags=re.I)
    return text.strip().strip('"“”').strip()


@dataclass
class EvolConfig:
    rounds: int = 3
    operations: tuple[str, ...] = tuple(OPERATIONS)
    temperature: float = 1.0
    max_tokens: int = 512
    response_max_tokens: int = 512
    judge_equality: bool = True
    seed: int = 42


def evolve(backend, records: list[dict], config: EvolConfig, progress: ProgressFn | None = None) -> SynthResult:
    """Run ``config.rounds`` rounds of Evol-Instruct over the first user turn of each record.

    ``progress("evolution rounds", 1, rounds)`` is called per finished round (``core.progress``).
    """
    rng = random.Random(config.seed)
    model_name = getattr(backend, "model", None) or getattr(backend, "model_name", "unknown")
    params = {"temperature": config.temperature, "max_tokens": config.max_tokens}
    answer_params = {"temperature": 0.0, "max_tokens": config.response_max_tokens}
    pool = [{"instruction": first_user(r), "id": r["id"], "root": r["id"]} for r in records if first_user(r).strip()]
    counts: Counter = Counter()
    kept: list[dict] = []
    rejects: list[dict] = []
    for round_number in range(1, config.rounds + 1):
        operations = [rng.choice(config.operations) for _ in pool]
        languages = [script_language(item["instruction"]) for item in pool]
        rewrite = [GenerationRequest([{"role": "user", "content": (
            breadth_prompt(item["instruction"], lang) if op == "breadth"
            else depth_prompt(item["instruction"], op, lang))}], params)
            for item, op, lang in zip(pool, operations, languages, strict=True)]
        rewrites = backend.generate(rewrite)
        evolved = [clean_rewrite(g.text) for g in rewrites]
        answers = generate_after(backend, [GenerationRequest([{"role": "user", "content": e}], answer_params)
                                           for e in evolved], rewrites)
        last = answers  # each item's last generation: it carries the error of whichever request failed
        verdicts = [False] * len(pool)
        if config.judge_equality:
            judge = [GenerationRequest([{"role": "user", "content": equality_prompt(item["instruction"], e, lang)}],
                                       {"temperature": 0.0, "max_tokens": 5})
                     for item, e, lang in zip(pool, evolved, languages, strict=True)]
            last = generate_after(backend, judge, answers)
            verdicts = [judged_equal(g.text, lang) for g, lang in zip(last, languages, strict=True)]
        next_pool = []
        for item, op, lang, new, answer, equal, final in zip(pool, operations, languages, evolved, answers, verdicts,
                                                             last, strict=True):
            counts["evolved"] += 1
            lineage = {"parent_id": item["id"], "root_id": item["root"], "operation": op, "round": round_number}
            reason = ("request_failed" if final.error
                      else elimination_reason(item["instruction"], new, answer.text, lang))
            if reason is None and equal and op != "breadth":
                reason = "no_information_gain"
            if reason:
                counts[reason] += 1
                rejects.append(make_reject({"instruction": new, "response": answer.text, **lineage}, stage="synth",
                                           operator="evol", reason=reason, detail=final.error or ""))
                next_pool.append(item)  # the paper returns failed evolutions' parents to the pool
                continue
            synth = {"method": "evol-instruct", "model": model_name, "params": params, **lineage,
                     "prompt_template": f"evol/{op}/{lang}"}
            record = make_record([{"role": "user", "content": new}, {"role": "assistant", "content": answer.text}],
                                 source={"format": "synth", "file": None}, meta={"synth": synth})
            kept.append(record)
            next_pool.append({"instruction": new, "id": record["id"], "root": item["root"]})
        pool = next_pool
        if progress:
            progress("evolution rounds", 1, config.rounds)
    funnel = {"evolved": counts["evolved"], "kept": len(kept),
              "dropped": {k: v for k, v in counts.items() if k != "evolved"}}
    return SynthResult(kept, rejects, funnel, backend.usage.__dict__.copy())
