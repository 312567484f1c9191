"""Evol-Instruct: operations, the four elimination rules, lineage across rounds, Chinese prompts."""

from __future__ import annotations

import pytest

from oidkit.models.backends import Generation, Usage
from oidkit.records import make_record
from oidkit.synth.evol import EvolConfig, elimination_reason, evolve, judged_equal


class EvolBackend:
    """Rewrites by appending a constraint; answers; judges by a scripted rule."""

    model = "scripted"

    def __init__(self, answer="Here is a detailed answer with several useful steps.", equal=False, rewrite=None,
                 fail=None):
        self.usage, self.answer, self.equal, self.rewrite, self.fail = Usage(), answer, equal, rewrite, fail
        self.prompts: list[str] = []

    def generate(self, requests, progress=None):
        out = []
        for r in requests:
            prompt = r.messages[-1]["content"]
            self.prompts.append(prompt)
            if self.fail and self.fail in prompt:
                out.append(Generation("", error="HTTP 400: prompt too long"))
                continue
            if "#Rewritten Prompt#:\n" in prompt or "#Created Prompt#:\n" in prompt:
                given = prompt.split("#The Given Prompt#:\n")[-1].split("\n#")[0]
                text = self.rewrite(given) if self.rewrite else f"{given} Use at most 50 words."
            elif prompt.startswith("Here are two instructions"):
                text = "Equal" if self.equal else "Not Equal"
            else:
                text = self.answer
            out.append(Generation(text, 1, 1))
        return out


def seed_records():
    return [make_record([{"role": "user", "content": "Explain photosynthesis."},
                         {"role": "assistant", "content": "Plants make sugar from light."}], id="r1")]


def test_rounds_build_a_lineage_chain():
    calls = []
    result = evolve(EvolBackend(), seed_records(), EvolConfig(rounds=3, operations=("add_constraints",)),
                    progress=lambda *call: calls.append(call))
    assert calls == [("evolution rounds", 1, 3)] * 3  # core.progress's (label, advance, total), one per round
    assert len(result.records) == 3 and result.funnel == {"evolved": 3, "kept": 3, "dropped": {}}
    first, second, third = (r["meta"]["synth"] for r in result.records)
    assert first["parent_id"] == "r1" and first["round"] == 1 and first["operation"] == "add_constraints"
    assert second["parent_id"] == result.records[0]["id"] and third["parent_id"] == result.records[1]["id"]
    assert {s["root_id"] for s in (first, second, third)} == {"r1"}
    assert result.records[2]["messages"][0]["content"] == "Explain photosynthesis." + " Use at most 50 words." * 3


def test_no_information_gain_is_judged_by_the_model_and_parent_stays():
    result = evolve(EvolBackend(equal=True), seed_records(), EvolConfig(rounds=2, operations=("deepen",)))
    assert result.records == [] and result.funnel["dropped"] == {"no_information_gain": 2}
    assert all(r["record"]["parent_id"] == "r1" for r in result.rejects)


def test_short_sorry_response_is_eliminated():
    backend = EvolBackend(answer="Sorry, I cannot help with that.")
    result = evolve(backend, seed_records(), EvolConfig(rounds=1, operations=("concretise",)))
    assert result.funnel["dropped"] == {"sorry_response": 1}


def test_template_copy_is_eliminated():
    backend = EvolBackend(rewrite=lambda given: f"#Rewritten Prompt#: {given} in the given prompt style")
    result = evolve(backend, seed_records(), EvolConfig(rounds=1, operations=("deepen",)))
    assert result.funnel["dropped"] == {"copies_template": 1}


def test_elimination_rules_directly():
    assert elimination_reason("a", "b harder", "the of and, to!", "en") == "stopwords_only_response"
    assert elimination_reason("a", "b harder", "...", "en") == "stopwords_only_response"
    long_sorry = "Sorry for the wait. " + "Here is a thorough explanation of the topic. " * 12
    assert elimination_reason("a", "b harder", long_sorry, "en") is None  # long answers may say sorry
    assert elimination_reason("a", "a", "fine answer here", "en") == "no_change"
    parent, evolved = "解释光合作用", "请详细解释光合作用并举例"
    assert elimination_reason(parent, evolved, "抱歉，我无法回答。", "zh") == "sorry_response"
    assert elimination_reason(parent, evolved, "的了。", "zh") == "stopwords_only_response"
    assert judged_equal("Equal", "en") and not judged_equal("Not Equal.", "en")
    assert judged_equal("等价", "zh") and not judged_equal("不等价", "zh")


def test_chinese_instructions_get_chinese_prompts():
    seen = []

    class Recorder(EvolBackend):
        def generate(self, requests, progress=None):
            prompts = [r.messages[-1]["content"] for r in requests]
            seen.extend(prompts)
            return [Generation("请详细解释光合作用，并给出三个例子。" if "#改写后的指令#" in p
                               else "不等价" if "等价" in p else "光合作用是植物利用光能制造有机物的过程。", 1, 1)
                    for p in prompts]

    records = [make_record([{"role": "user", "content": "解释光合作用"}, {"role": "assistant", "content": "好的"}])]
    result = evolve(Recorder(), records, EvolConfig(rounds=1, operations=("deepen",)))
    assert "#给定指令#" in seen[0] and len(result.records) == 1


@pytest.mark.parametrize(("failing", "requests"), [("#The Given Prompt#:\nDescribe rain.", 3 + 1),
                                                   ("Describe rain. Use at most 50 words.", 3 + 2),
                                                   ("The second prompt: Describe rain.", 3 + 3)])
def test_a_failed_request_is_a_reject_its_parent_stays_and_its_later_requests_are_not_sent(failing, requests):
    rain = make_record([{"role": "user", "content": "Describe rain."}, {"role": "assistant", "content": "Wet."}],
                       id="r2")
    records = [*seed_records(), rain]
    backend = EvolBackend(fail=failing)  # the rewrite, the answer or the judge request of "Describe rain." fails
    result = evolve(backend, records, EvolConfig(rounds=2, operations=("add_constraints",)))
    assert result.funnel == {"evolved": 4, "kept": 2, "dropped": {"request_failed": 2}}
    assert [r["meta"]["synth"]["root_id"] for r in result.records] == ["r1", "r1"]
    rejects = [(r["reason"], r["record"]["parent_id"], r["detail"]) for r in result.rejects]
    assert rejects == [("request_failed", "r2", "HTTP 400: prompt too long")] * 2
    assert len(backend.prompts) == 2 * requests  # per round: rewrite, answer, judge for r1; up to the failure for r2
