"""Read evaluation files as users already have them, detecting the task from their fields.

- ``choice``: a CSV with ``Question,A,B,C,D,Answer`` (CMMLU; k shots from the sibling ``dev/`` file), or
  JSONL with ``question``, ``choices``, ``answer`` (MMLU style). Scored by option log-likelihood.
- ``gsm8k``: JSONL ``question`` + ``answer`` ending in ``#### N``. Scored by the final number.
- ``generation``: the Self-Instruct eval (``instruction``, ``instances``) or the BELLE eval (``question``,
  ``std_answer``). A prompt and a reference answer.
- ``records``: canonical records (``messages``). Perplexity, and generation of the last assistant turn.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from oidkit.errors import InputError
from oidkit.evaluate import TASKS
from oidkit.evaluate.choice import LETTERS, ChoiceExample
from oidkit.io import read_jsonl, read_records

CMMLU_COLUMNS = ["Question", "A", "B", "C", "D", "Answer"]
# The Chinese name of each of CMMLU's 67 subjects by file name, as CMMLU's own prompt uses it
# ("以下是关于天文学的单项选择题", not "astronomy"); other files keep their file name as the subject.
CMMLU_SUBJECTS_ZH = {
    "agronomy": "农学", "anatomy": "解剖学", "ancient_chinese": "古汉语", "arts": "艺术学",
    "astronomy": "天文学", "business_ethics": "商业伦理", "chinese_civil_service_exam": "中国公务员考试",
    "chinese_driving_rule": "中国驾驶规则", "chinese_food_culture": "中国饮食文化",
    "chinese_foreign_policy": "中国外交政策", "chinese_history": "中国历史", "chinese_literature": "中国文学",
    "chinese_teacher_qualification": "中国教师资格", "clinical_knowledge": "临床知识",
    "college_actuarial_science": "大学精算学", "college_education": "大学教育学",
    "college_engineering_hydrology": "大学工程水文学", "college_law": "大学法律",
    "college_mathematics": "大学数学", "college_medical_statistics": "大学医学统计",
    "college_medicine": "大学医学", "computer_science": "计算机科学", "computer_security": "计算机安全",
    "conceptual_physics": "概念物理学", "construction_project_management": "建设工程管理",
    "economics": "经济学", "education": "教育学", "electrical_engineering": "电气工程",
    "elementary_chinese": "小学语文", "elementary_commonsense": "小学常识",
    "elementary_information_and_technology": "小学信息技术", "elementary_mathematics": "初等数学",
    "ethnology": "民族学", "food_science": "食品科学", "genetics": "遗传学", "global_facts": "全球事实",
    "high_school_biology": "高中生物", "high_school_chemistry": "高中化学", "high_school_geography": "高中地理",
    "high_school_mathematics": "高中数学", "high_school_physics": "高中物理学",
    "high_school_politics": "高中政治", "human_sexuality": "人类性行为", "international_law": "国际法学",
    "journalism": "新闻学", "jurisprudence": "法理学", "legal_and_moral_basis": "法律与道德基础",
    "logical": "逻辑学", "machine_learning": "机器学习", "management": "管理学", "marketing": "市场营销",
    "marxist_theory": "马克思主义理论", "modern_chinese": "现代汉语", "nutrition": "营养学",
    "philosophy": "哲学", "professional_accounting": "专业会计", "professional_law": "专业法学",
    "professional_medicine": "专业医学", "professional_psychology": "专业心理学",
    "public_relations": "公共关系", "security_study": "安全研究", "sociology": "社会学",
    "sports_science": "体育学", "traditional_chinese_medicine": "中医中药", "virology": "病毒学",
    "world_history": "世界历史", "world_religions": "世界宗教",
}


@dataclass
class GenerationExample:
    """A conversation to continue and the reference answer to score the continuation against."""

    id: str
    messages: list[dict]
    reference: str


@dataclass
class Task:
    """A loaded evaluation file: its name, type and examples (records are kept for perplexity)."""

    name: str
    kind: str
    examples: list
    records: list[dict] | None = None


def detect_task(path: Path, first_row: dict | list[str]) -> str:
    """The task type of a file from its first row's fields; raises ``InputError`` naming the fields found."""
    if isinstance(first_row, list):
        if all(column in first_row for column in CMMLU_COLUMNS):
            return "choice"
        raise InputError(f"CSV columns {first_row} are not a multiple-choice file", file=str(path),
                         hint="expected columns " + ",".join(CMMLU_COLUMNS))
    keys = set(first_row)
    if "messages" in keys:
        return "records"
    if {"question", "choices", "answer"} <= keys:
        return "choice"
    if {"question", "answer"} <= keys and "####" in str(first_row["answer"]):
        return "gsm8k"
    if {"instruction", "instances"} <= keys or {"question", "std_answer"} <= keys:
        return "generation"
    raise InputError(f"cannot tell the task from the fields {sorted(keys)}", file=str(path), line=1,
                     hint="expected messages | question+choices+answer | question+answer (#### N) | "
                          "instruction+instances | question+std_answer; or pass --task")


def load_task(path: str | Path, *, task: str | None = None, limit: int | None = None, shots: int = 5) -> Task:
    """Load one evaluation file (at most ``limit`` examples); ``task`` forces the type instead of detecting it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("evaluation file not found", file=str(path))
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
        kind = task or detect_task(path, header)
        return Task(path.stem, kind, load_cmmlu(path, limit=limit, shots=shots))
    first = next(read_jsonl(path), None)
    if first is None:
        raise InputError("evaluation file is empty", file=str(path))
    kind = task or detect_task(path, first)
    if kind not in TASKS:
        raise InputError(f"unknown task {kind!r}", hint=f"choose one of {', '.join(TASKS)}")
    if kind == "records":
        records = list(islice(read_records(path), limit))
        return Task(path.stem, kind, [record_example(r) for r in records], records)
    rows = list(islice(read_jsonl(path), limit))
    convert = {"choice": choice_example, "gsm8k": gsm8k_example, "generation": generation_example}[kind]
    examples = []
    for i, row in enumerate(rows):
        try:
            examples.append(convert(row, i))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(f"row does not fit task {kind!r}: {type(e).__name__} {e}", file=str(path),
                             line=i + 1, hint="check the fields or force another --task") from None
    return Task(path.stem, kind, examples)


def record_example(record: dict) -> GenerationExample:
    """Continue the conversation before the last assistant turn; that turn is the reference."""
    messages = record["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return GenerationExample(str(record.get("id")), messages[:last], messages[last]["content"])


def generation_example(row: dict, index: int) -> GenerationExample:
    """A Self-Instruct (instruction + first instance), BELLE (question + std_answer) or question + answer row."""
    if "instruction" in row:
        instance = row["instances"][0]
        prompt = row["instruction"] + (f"\n\n{instance['input']}" if instance.get("input") else "")
        reference = instance["output"]
    else:
        prompt, reference = row["question"], row["std_answer"] if "std_answer" in row else row["answer"]
    return GenerationExample(str(row.get("id", index)), [{"role": "user", "content": prompt}], reference)


def gsm8k_example(row: dict, index: int) -> GenerationExample:
    """A GSM8K question; the reference is the full worked answer (the number is taken from it when scoring)."""
    return GenerationExample(str(row.get("id", index)), [{"role": "user", "content": row["question"]}],
                             row["answer"])


def choice_example(row: dict, index: int) -> ChoiceExample:
    """An MMLU-style row: ``answer`` is an index or a letter."""
    answer = row["answer"]
    answer = LETTERS.index(answer.strip().upper()) if isinstance(answer, str) else int(answer)
    if not 0 <= answer < len(row["choices"]):
        raise ValueError(f"answer {row['answer']!r} is not one of the {len(row['choices'])} choices")
    return ChoiceExample(str(row.get("id", index)), row["question"], list(row["choices"]), answer,
                         row.get("subject", ""))


def read_cmmlu_csv(path: Path) -> list[ChoiceExample]:
    """Rows of a CMMLU CSV (``,Question,A,B,C,D,Answer``) as questions; the subject is CMMLU's Chinese name
    of the file's subject, or the file name for a file CMMLU does not have."""
    subject = CMMLU_SUBJECTS_ZH.get(path.stem, path.stem)
    examples = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            if row["Answer"].strip() not in ("A", "B", "C", "D"):
                raise InputError(f"answer {row['Answer']!r} is not A-D", file=str(path), line=line)
            examples.append(ChoiceExample(f"{path.stem}-{row.get('') or line - 2}", row["Question"],
                                          [row[c] for c in "ABCD"], "ABCD".index(row["Answer"].strip()),
                                          subject))
    return examples


def load_cmmlu(path: Path, *, limit: int | None = None, shots: int = 5) -> list[ChoiceExample]:
    """A CMMLU test file with up to ``shots`` solved examples from ``../dev/<same name>.csv`` when it exists."""
    examples = read_cmmlu_csv(path)[:limit]
    dev = path.parent.parent / "dev" / path.name
    shot_examples = read_cmmlu_csv(dev)[:shots] if shots and dev.is_file() and dev != path else []
    for example in examples:
        example.shots = shot_examples
    return examples
