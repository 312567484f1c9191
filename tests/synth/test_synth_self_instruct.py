"""Self-Instruct: prompt shape, parsing, each filter, classification routing, provenance and funnel."""

from __future__ import annotations

import re

from oidkit.models.backends import Generation, Usage
from oidkit.synth.self_instruct import (
    SeedTask,
    SelfInstructConfig,
    encode_instruction_prompt,
    instruction_problem,
    load_seed_tasks,
    parse_instance,
    parse_instructions,
    self_instruct,
)

SEEDS = [
    SeedTask("s1", "Classify the sentiment of the review as positive or negative.",
             [{"input": "I loved it.", "output": "positive"}], True),
    SeedTask("s2", "Is the following number prime? Answer yes or no.", [{"input": "7", "output": "yes"}], True),
    SeedTask("s3", "Write a short poem about the morning sun.", [{"input": "", "output": "Gold light wakes"}], False),
    SeedTask("s4", "Summarize the paragraph in one sentence.", [{"input": "Long text.", "output": "Short."}], False),
    SeedTask("s5", "Translate the sentence into French.", [{"input": "Hello", "output": "Bonjour"}], False),
    SeedTask("s6", "Give three tips for staying healthy.", [{"input": "", "output": "Sleep, eat, move."}], False),
    SeedTask("s7", "Explain why the sky is blue to a child.", [{"input": "", "output": "Light scatters."}], False),
    SeedTask("s8", "List the planets of the solar system in order.", [{"input": "", "output": "Mercury..."}], False),
]

GENERATED = (
    " Suggest a name for a new coffee shop near the beach.\n"
    "10. Draw a picture of a cat.\n"  # blacklist
    "11. Hi there.\n"  # too short
    "12. Write a short poem about the morning sun!\n"  # near copy of a seed: novelty
    "13. Write a program to sort numbers in ascending order.\n"
    "14. Decide whether the email is spam or not spam.\n"
    "15. \"Quoted instructions are not allowed here at all\"\n"
)


class ScriptedBackend:
    """Answers by prompt kind: instruction lists, yes/no classification, instances."""

    model = "scripted"

    def __init__(self, fail=lambda prompt: False):
        self.usage = Usage()
        self.prompts: list[str] = []
        self.fail = fail

    def generate(self, requests, progress=None):
        out = []
        for r in requests:
            prompt = r.messages[-1]["content"]
            self.prompts.append(prompt)
            if self.fail(prompt):
                out.append(Generation("", error="HTTP 500: scripted"))
                continue
            if prompt.startswith("Come up with a series of tasks"):
                text = GENERATED
            elif "Is it classification?" in prompt:
                task = prompt.rsplit("Task: ", 1)[1]
                text = " Yes" if "spam" in task else " No"
            elif prompt.startswith("Given the classification task"):
                text = "Class label: spam\nInput: WIN A FREE PRIZE NOW"
            else:
                text = "Input: a beach town\nOutput: Sandy Beans"
            out.append(Generation(text, 10, 5, "stop"))
            self.usage.add(out[-1])
        return out


def test_prompt_is_a_numbered_list_to_continue():
    prompt = encode_instruction_prompt(["Do a:", "Do  b"], "en")
    assert prompt == "Come up with a series of tasks:\n1. Do a\n2. Do b\n3."


def test_parse_instructions_splits_the_numbered_continuation():
    assert parse_instructions(" First task here.\n10. Second one.\n11 . Third") == [
        "First task here.", "Second one.", "Third"]
    assert parse_instructions(" 写一首诗。\n10. 解释量子计算。") == ["写一首诗。", "解释量子计算。"]


def test_each_filter_names_its_reason():
    config = SelfInstructConfig()
    assert instruction_problem("Hi there.", config) == ("length", 2)
    assert instruction_problem(" ".join(["word"] * 151), config) == ("length", 151)
    assert instruction_problem("Draw a picture of a cat.", config)[0] == "blacklist"
    assert instruction_problem("Write a program to add two numbers.", config)[0] == "write_a_program"
    assert instruction_problem("\"Quoted instructions are not allowed\"", config)[0] == "starts_with_punctuation"
    assert instruction_problem("Suggest a name for a coffee shop.", config) is None
    # Chinese counts characters and has its own blacklist.
    assert instruction_problem("写诗", config) == ("length", 2)
    assert instruction_problem("请根据这张图片写一段描述", config) == ("blacklist", "图片")
    assert instruction_problem("请解释一下为什么天空是蓝色的", config) is None


def test_parse_instance_output_first_and_input_first():
    assert parse_instance("Class label: spam\nInput: FREE PRIZE", True, "en") == ("FREE PRIZE", "spam")
    assert parse_instance("Input: x = 2\nOutput: 4\n\nTask: other", False, "en") == ("x = 2", "4")
    assert parse_instance("Output: Just the answer", False, "en") == ("", "Just the answer")
    assert parse_instance("输入：你好\n输出：Hello", False, "zh") == ("你好", "Hello")
    assert parse_instance("Input: only an input", False, "en") is None


def test_self_instruct_round_funnel_and_provenance():
    backend = ScriptedBackend()
    config = SelfInstructConfig(num_instructions=2, requests_per_round=1, max_rounds=3)
    calls = []
    result = self_instruct(backend, SEEDS, config, progress=lambda *call: calls.append(call))
    assert calls == [("instructions kept", 1, 2)] * 2  # core.progress's (label, advance, total), one per kept
    instructions = [r["meta"]["instruction"] for r in result.records]
    assert instructions == ["Suggest a name for a new coffee shop near the beach.",
                            "Decide whether the email is spam or not spam."]
    assert result.funnel["dropped"] == {"blacklist": 1, "length": 1, "novelty": 1, "write_a_program": 1}
    assert result.funnel["generated"] == 6  # stops parsing once 2 are kept
    assert result.funnel["kept_instructions"] == 2 and result.funnel["classification"] == 1
    spam = result.records[1]
    assert spam["messages"][0]["content"].endswith("\n\nWIN A FREE PRIZE NOW")
    assert spam["messages"][1] == {"role": "assistant", "content": "spam"}
    synth = spam["meta"]["synth"]
    assert synth["model"] == "scripted" and synth["params"]["temperature"] == 0.7 and synth["params"]["top_p"] == 0.5
    assert len(synth["seed_ids"]) == 8 and set(synth["seed_ids"]) <= {s.id for s in SEEDS}
    assert {r["reason"] for r in result.rejects} == {"blacklist", "length", "novelty", "write_a_program"}
    first_prompt = backend.prompts[0]
    assert len(re.findall(r"^\d+\. ", first_prompt, flags=re.M)) == 8 and first_prompt.endswith("\n9.")


def test_failed_requests_are_rejects_and_the_funnel_adds_up():
    lists = []

    def fail(prompt):
        if prompt.startswith("Come up with a series of tasks"):
            lists.append(prompt)
            return len(lists) == 1  # the first instruction-generation request
        return prompt.endswith("Task: Suggest a name for a new coffee shop near the beach.\nIs it classification?")

    backend = ScriptedBackend(fail)
    result = self_instruct(backend, SEEDS, SelfInstructConfig(num_instructions=2, requests_per_round=1, max_rounds=3))
    funnel = result.funnel
    assert funnel["request_failed"] == {"generation": 1, "instances": 1}
    assert [r["meta"]["instruction"] for r in result.records] == ["Decide whether the email is spam or not spam."]
    assert funnel["generated"] == sum(funnel["dropped"].values()) + funnel["kept_instructions"]
    assert funnel["kept_instructions"] == funnel["records"] + funnel["instance_failed"] + 1
    failed = [r for r in result.rejects if r["reason"] == "request_failed"]
    assert [(r["record"].get("instruction"), r["detail"]) for r in failed] == [
        (None, "HTTP 500: scripted"), ("Suggest a name for a new coffee shop near the beach.", "HTTP 500: scripted")]
    assert failed[0]["record"]["meta"]["prompt"] == lists[0]
    assert len(result.rejects) == sum(funnel["dropped"].values()) + funnel["instance_failed"] + 2
    assert not any("coffee shop" in p for p in backend.prompts if p.startswith("Come up with examples"))


def test_second_round_shows_machine_instructions_and_is_deterministic():
    config = SelfInstructConfig(num_instructions=5, requests_per_round=1, max_rounds=2)
    first, second = ScriptedBackend(), ScriptedBackend()
    a, b = self_instruct(first, SEEDS, config), self_instruct(second, SEEDS, config)
    assert first.prompts == second.prompts and a.records == b.records
    assert "Suggest a name for a new coffee shop" in first.prompts[1]  # 6 human + 2 machine from round 2


def test_real_seed_files_load(shared_data):
    english = load_seed_tasks(shared_data / "self_instruct_seed_tasks.jsonl")
    chinese = load_seed_tasks(shared_data / "belle_zh_seed_tasks.jsonl")
    assert len(english) == 175 and len(chinese) == 175
    assert any(t.is_classification for t in english) and all(t.instances for t in english)


def test_self_instruct_through_oid_serve_on_loopback(tiny_server, tmp_path):
    """The real path: our OpenAI-compatible server with a tiny model; whatever it says, nothing is lost."""
    from oidkit.models.backends import OpenAIBackend

    backend = OpenAIBackend(tiny_server, "tiny", cache_dir=tmp_path, backoff=0)
    # One round and no instances keep every prompt within the tiny model's 512 tokens: later rounds show its
    # (random, sampled) instructions and instance prompts are long few-shot ones; the scripted tests cover both.
    config = SelfInstructConfig(num_instructions=3, requests_per_round=3, max_rounds=1, max_tokens=48,
                                generate_instances=False)
    result = self_instruct(backend, SEEDS, config)
    funnel = result.funnel
    assert funnel["generated"] == sum(funnel["dropped"].values()) + funnel["kept_instructions"]
    assert funnel["records"] == funnel["kept_instructions"]
    assert len(result.rejects) == sum(funnel["dropped"].values())
    assert result.usage["requests"] == 3 and result.usage["prompt_tokens"] > 0 and result.usage["completion_tokens"] > 0
    again = OpenAIBackend(tiny_server, "tiny", cache_dir=tmp_path, backoff=0)
    assert self_instruct(again, SEEDS, config).records == result.records
    assert again.usage.cached == again.usage.requests  # the repeated run is answered from the cache
