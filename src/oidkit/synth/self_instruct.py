"""Self-Instruct (Wang et al., 2023): grow an instruction pool from a few human seed tasks.

Faithful to the paper by default, every number configurable:
1. Instruction generation: each prompt shows 8 instructions (6 human seeds + 2 generated, once there
   are generated ones), shuffled, numbered, and asks for the next; sampling at temperature 0.7, top_p 0.5.
   Alpaca's batch mode (ask for up to 20 at once) is ``num_prompt_instructions`` + ``request_more``.
2. Filters, each counted in the funnel: length (more than 3 and at most 150 words; characters for
   Chinese), a keyword blacklist (things a text model cannot do: images, files, drawing...), "Write a
   program" (the paper's observation), a leading punctuation mark, a non-ASCII first character (English
   only), and novelty: ROUGE-L above 0.7 against any instruction already in the pool (seeds included).
3. Classification detection, then instances: output-first (label, then an input for it) for
   classification tasks, input-first for the rest. Few-shot examples come from the seed tasks themselves,
   so the same code works for BELLE's Chinese seeds.

Prompt sampling is seeded and every answer cached by the backend, so a repeated or interrupted run
replays the same prompts and pays only for what it has not seen. A request that fails for good is a
``request_failed`` reject; it is not cached, so a rerun asks it again (and, since later prompts show
earlier answers, re-asks the prompts that change because of it).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from oidkit.models.backends import Generation, GenerationRequest
from oidkit.records import make_record, make_reject
from oidkit.synth.novelty import NoveltyFilter
from oidkit.text import script_language

if TYPE_CHECKING:
    from oidkit.core.progress import ProgressFn

BLACKLIST = {
    "en": ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
           "draw", "plot", "go to", "video", "audio", "flowchart", "diagram"],
    "zh": ["图片", "图像", "图表", "照片", "文件", "地图", "绘制", "画出", "画一", "视频", "音频", "流程图", "打开"],
}

PROMPTS = {
    "en": {
        "instructions": "Come up with a series of tasks:\n",
        "classification_instructions": "Come up with a series of classification tasks. "
                                       "Try to specify the possible output labels when possible.\n",
        "is_classification": "Can the following task be regarded as a classification task with finite output "
                             "labels? Answer Yes or No.\n\n",
        "task": "Task", "input": "Input", "output": "Output", "label": "Class label",
        "yes": "Yes", "no": "No", "answer": "Is it classification?",
        "input_first": "Come up with examples for the following tasks. If the task doesn't require additional "
                       "input, you can generate the output directly.\n\n",
        "output_first": "Given the classification task definition and the class labels, generate an input that "
                        "corresponds to each of the class labels. If the task doesn't require input, just "
                        "generate the correct class label.\n\n",
    },
    "zh": {
        "instructions": "请想出一系列任务：\n",
        "classification_instructions": "请想出一系列分类任务，尽量写明可能的输出类别。\n",
        "is_classification": "下面的任务能否看作输出类别有限的分类任务？请回答“是”或“否”。\n\n",
        "task": "任务", "input": "输入", "output": "输出", "label": "类别",
        "yes": "是", "no": "否", "answer": "是否为分类任务？",
        "input_first": "请为下面的任务举出例子。如果任务不需要额外的输入，可以直接给出输出。\n\n",
        "output_first": "给定分类任务的定义和类别，请为每个类别生成一个对应的输入。"
                        "如果任务不需要输入，直接给出正确的类别。\n\n",
    },
}

@dataclass
class SelfInstructConfig:
    """Every number of the method; defaults are the paper's."""

    num_instructions: int = 100
    num_prompt_instructions: int = 8
    num_machine_in_prompt: int = 2
    requests_per_round: int = 5
    temperature: float = 0.7
    top_p: float = 0.5
    max_tokens: int = 1024
    min_words: int = 3  # keep when words > min_words (the paper drops <= 3)
    max_words: int = 150
    min_chars_zh: int = 5
    max_chars_zh: int = 300
    novelty_threshold: float = 0.7
    language: str = "en"
    generate_instances: bool = True
    instance_max_tokens: int = 300
    max_rounds: int = 50
    seed: int = 42
    blacklist: dict = field(default_factory=lambda: dict(BLACKLIST))


@dataclass
class SeedTask:
    id: str
    instruction: str
    instances: list[dict]
    is_classification: bool


def load_seed_tasks(path: str | Path) -> list[SeedTask]:
    """Seed tasks in the Self-Instruct / BELLE JSONL shape (``instruction``, ``instances``, ``is_classification``)."""
    from oidkit.errors import InputError

    if not Path(path).is_file():
        raise InputError("seed tasks not found", file=str(path),
                         hint="Self-Instruct's and BELLE's seeds are in the shared data folder "
                              "(self_instruct_seed_tasks.jsonl, belle_zh_seed_tasks.jsonl; $OIDKIT_SHARED_DATA or "
                              "../shared/data); any JSONL of {instruction, instances} rows works")
    tasks = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "instruction" not in row:
                raise InputError("a seed task needs an 'instruction' field", file=str(path), line=number,
                                 hint="seed files look like Self-Instruct's seed_tasks.jsonl")
            tasks.append(SeedTask(str(row.get("id", number)), row["instruction"],
                                  row.get("instances") or [], bool(row.get("is_classification"))))
    return tasks


def encode_instruction_prompt(instructions: list[str], language: str, classification: bool = False) -> str:
    """The numbered list the model continues with instruction ``len(instructions) + 1``."""
    words = PROMPTS[language]
    prompt = words["classification_instructions" if classification else "instructions"]
    for i, instruction in enumerate(instructions, 1):
        one_line = re.sub(r"\s+", " ", instruction).strip().rstrip(":")
        prompt += f"{i}. {one_line}\n"
    return prompt + f"{len(instructions) + 1}."


def parse_instructions(text: str) -> list[str]:
    """Split a numbered continuation into instructions (the first one continues the prompt's last number)."""
    parts = re.split(r"\n\s*\d+\s?[.、．]\s*", "\n" + text.strip().lstrip("0123456789.、． "))
    return [re.sub(r"\s+", " ", p).strip() for p in parts if p.strip()]


def instruction_problem(instruction: str, config: SelfInstructConfig) -> tuple[str, float] | None:
    """Why a generated instruction is filtered out (reason code, measured value), or ``None`` to keep it."""
    language = script_language(instruction)
    if language == "zh":
        length = len(re.sub(r"\s", "", instruction))
        if not config.min_chars_zh < length <= config.max_chars_zh:
            return "length", length
    else:
        length = len(instruction.split())
        if not config.min_words < length <= config.max_words:
            return "length", length
    for word in config.blacklist.get(language, []):
        pattern = rf"\b{re.escape(word)}\b" if language == "en" else re.escape(word)
        if re.search(pattern, instruction, flags=re.IGNORECASE):
            return "blacklist", word
    if language == "en" and instruction.lower().startswith("write a program"):
        return "write_a_program", 0
    if instruction[0] in string.punctuation or instruction[0] in "，。！？；：、":
        return "starts_with_punctuation", instruction[0]
    if config.language == "en" and language == "en" and not instruction[0].isascii():
        return "non_ascii_start", instruction[0]
    return None


def classification_prompt(seeds: list[SeedTask], instruction: str, language: str, rng: random.Random) -> str:
    """Few-shot yes/no prompt with balanced examples drawn from the seeds."""
    words = PROMPTS[language]
    positives = [s for s in seeds if s.is_classification]
    negatives = [s for s in seeds if not s.is_classification]
    shots = rng.sample(positives, min(3, len(positives))) + rng.sample(negatives, min(3, len(negatives)))
    rng.shuffle(shots)
    prompt = words["is_classification"]
    for s in shots:
        verdict = words["yes" if s.is_classification else "no"]
        prompt += f"{words['task']}: {s.instruction}\n{words['answer']} {verdict}\n\n"
    return prompt + f"{words['task']}: {instruction}\n{words['answer']}"


def instance_prompt(seeds: list[SeedTask], instruction: str, classification: bool, language: str,
                    rng: random.Random) -> str:
    """Few-shot instance generation: output-first for classification, input-first otherwise."""
    words = PROMPTS[language]
    with_instances = [s for s in seeds if s.instances]
    pool = [s for s in with_instances if s.is_classification == classification] or with_instances
    prompt = words["output_first" if classification else "input_first"]
    for s in rng.sample(pool, min(3, len(pool))):
        instance = s.instances[0]
        prompt += f"{words['task']}: {s.instruction}\n{format_instance(instance, classification, words)}\n\n"
    return prompt + f"{words['task']}: {instruction}\n"


def format_instance(instance: dict, classification: bool, words: dict) -> str:
    given, output = instance.get("input", ""), instance.get("output", "")
    if classification:
        return f"{words['label']}: {output}\n{words['input']}: {given}".rstrip()
    return (f"{words['input']}: {given}\n" if given else "") + f"{words['output']}: {output}"


def parse_instance(text: str, classification: bool, language: str) -> tuple[str, str] | None:
    """``(input, output)`` from the model's first instance, or ``None`` when there is no output."""
    words = PROMPTS[language]
    first = re.split(rf"\n\s*\n|\n{words['task']}\s*:", text.strip())[0]
    fields = {}
    for key in ("label", "input", "output"):
        match = re.search(rf"{words[key]}\s*[:：]\s*(.*?)(?=\n\s*(?:{words['label']}|{words['input']}|"
                          rf"{words['output']})\s*[:：]|\Z)", first, flags=re.S)
        if match:
            fields[key] = match.group(1).strip()
    output = fields.get("label" if classification else "output", "")
    if not output and not classification and "input" not in fields and first and ":" not in first[:20]:
        output = first  # the task needs no input and the model answered directly
    return (fields.get("input", ""), output) if output else None


@dataclass
class SynthResult:
    records: list[dict]
    rejects: list[dict]
    funnel: dict
    usage: dict


def generate_after(backend, requests: list[GenerationRequest], earlier: list[Generation]) -> list[Generation]:
    """Answers to ``requests`` for the items whose ``earlier`` request succeeded; the others keep their failed
    generation, so nothing is spent on them and their error reaches the end of the item's chain of requests."""
    fresh = iter(backend.generate([r for r, e in zip(requests, earlier, strict=True) if not e.error]))
    return [e if e.error else next(fresh) for e in earlier]


def self_instruct(backend, seeds: list[SeedTask], config: SelfInstructConfig,
                  progress: ProgressFn | None = None) -> SynthResult:
    """Run Self-Instruct until ``num_instructions`` new instructions are kept (or ``max_rounds`` pass).

    ``progress("instructions kept", 1, num_instructions)`` is called per kept instruction (``core.progress``).
    """
    rng = random.Random(config.seed)
    language = config.language
    novelty = NoveltyFilter(config.novelty_threshold, [s.instruction for s in seeds])
    params = {"temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_tokens,
              "stop": ["\n\n", f"\n{config.num_prompt_instructions + 8}", f"{config.num_prompt_instructions + 8}."]}
    model = getattr(backend, "model", None)
    model_name = model if isinstance(model, str) else getattr(backend, "model_name", "unknown")
    counts: Counter = Counter()
    kept: list[tuple[str, dict]] = []
    rejects: list[dict] = []
    for round_number in range(config.max_rounds):
        if len(kept) >= config.num_instructions:
            break
        requests, provenance = [], []
        for _ in range(config.requests_per_round):
            machine = rng.sample([k[0] for k in kept], min(config.num_machine_in_prompt, len(kept)))
            human = rng.sample(seeds, config.num_prompt_instructions - len(machine))
            shown = [s.instruction for s in human] + machine
            rng.shuffle(shown)
            prompt = encode_instruction_prompt(shown, language)
            requests.append(GenerationRequest([{"role": "user", "content": prompt}], params))
            provenance.append({"seed_ids": [s.id for s in human], "machine_in_prompt": machine, "prompt": prompt})
        for generation, origin in zip(backend.generate(requests), provenance, strict=True):
            if generation.error:
                counts["failed_generation"] += 1
                rejects.append(make_reject({"meta": {"round": round_number, **origin}}, stage="synth",
                                           operator="self_instruct", reason="request_failed", detail=generation.error))
                continue
            for instruction in parse_instructions(generation.text):
                counts["generated"] += 1
                meta = {"round": round_number, **origin, "finish_reason": generation.finish_reason}
                problem = instruction_problem(instruction, config)
                if problem is None:
                    score, row = novelty.most_similar(instruction)
                    if score > config.novelty_threshold:
                        problem = ("novelty", round(score, 4))
                        meta["most_similar"] = " ".join(novelty.tokens[row]) if row is not None else None
                if problem:
                    counts[f"dropped_{problem[0]}"] += 1
                    rejects.append(make_reject({"instruction": instruction, "meta": meta}, stage="synth",
                                               operator="self_instruct", reason=problem[0], value=problem[1]))
                    continue
                novelty.add(instruction)
                kept.append((instruction, meta))
                if progress:
                    progress("instructions kept", 1, config.num_instructions)
                if len(kept) >= config.num_instructions:
                    break
            if len(kept) >= config.num_instructions:
                break
    counts["kept_instructions"] = len(kept)
    records = make_instances(backend, seeds, kept, config, rng, counts, rejects, model_name, params)
    funnel = {"generated": counts["generated"],
              "dropped": {k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_")},
              "kept_instructions": len(kept), "records": len(records),
              "classification": counts["classification"], "instance_failed": counts["instance_failed"],
              # instruction-list requests that failed, and kept instructions whose classification or instance
              # request failed: kept_instructions = records + instance_failed + request_failed["instances"]
              "request_failed": {"generation": counts["failed_generation"], "instances": counts["failed_instances"]}}
    return SynthResult(records, rejects, funnel, backend.usage.__dict__.copy())


def make_instances(backend, seeds, kept, config, rng, counts, rejects, model_name, params) -> list[dict]:
    """Classify each kept instruction, then generate one instance for it; build canonical records."""
    language = config.language
    if not config.generate_instances:
        return [_record(instruction, "", "", meta, None, model_name, params, config) for instruction, meta in kept]
    short = {"temperature": 0.0, "max_tokens": 3}
    questions = [GenerationRequest([{"role": "user", "content": classification_prompt(seeds, i, language, rng)}], short)
                 for i, _ in kept]
    answers = backend.generate(questions)
    yes = PROMPTS[language]["yes"].lower()
    is_classification = [a.text.strip().lower().startswith(yes) for a in answers]
    counts["classification"] = sum(is_classification)
    instance_params = {"temperature": 0.0, "max_tokens": config.instance_max_tokens, "stop": ["\n\n"]}
    requests = [GenerationRequest([{"role": "user", "content": instance_prompt(seeds, i, c, language, rng)}],
                                  instance_params) for (i, _), c in zip(kept, is_classification, strict=True)]
    instances = generate_after(backend, requests, answers)  # no instance for an instruction left unclassified
    records = []
    for (instruction, meta), classification, generation in zip(kept, is_classification, instances, strict=True):
        if generation.error:
            counts["failed_instances"] += 1
            rejects.append(make_reject({"instruction": instruction, "meta": meta}, stage="synth",
                                       operator="self_instruct", reason="request_failed", detail=generation.error))
            continue
        parsed = parse_instance(generation.text, classification, language)
        if parsed is None:
            counts["instance_failed"] += 1
            rejects.append(make_reject({"instruction": instruction, "raw": generation.text, "meta": meta},
                                       stage="synth", operator="self_instruct", reason="instance_unparsable"))
            continue
        records.append(_record(instruction, *parsed, meta, classification, model_name, params, config))
    return records


def _record(instruction, given, output, meta, classification, model_name, params, config) -> dict:
    user = instruction + (f"\n\n{given}" if given else "")
    messages = [{"role": "user", "content": user}]
    if output:
        messages.append({"role": "assistant", "content": output})
    synth = {"method": "self-instruct", "model": model_name, "params": params, "round": meta["round"],
             "seed_ids": meta["seed_ids"], "prompt_template": "self_instruct/" + config.language,
             "is_classification": classification, "prompt": meta["prompt"]}
    return make_record(messages, source={"format": "synth", "file": None},
                       meta={"instruction": instruction, "input": given, "synth": synth})

