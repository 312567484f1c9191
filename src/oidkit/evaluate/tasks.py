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
from oidkit.evaluate.choice import LETTERS, ChoiceExample
from oidkit.io import read_jsonl, read_records

TASKS = ("choice", "gsm8k", "generation", "records")
CMMLU_COLUMNS = ["Question", "A", "B", "C", "D", "Answer"]


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
    """Rows of a CMMLU CSV (``,Question,A,B,C,D,Answer``) as questions; the subject is the file name."""
    examples = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            if row["Answer"].strip() not in ("A", "B", "C", "D"):
                raise InputError(f"answer {row['Answer']!r} is not A-D", file=str(path), line=line)
            examples.append(ChoiceExample(f"{path.stem}-{row.get('') or line - 2}", row["Question"],
                                          [row[c] for c in "ABCD"], "ABCD".index(row["Answer"].strip()),
                                          path.stem))
    return examples


def load_cmmlu(path: Path, *, limit: int | None = None, shots: int = 5) -> list[ChoiceExample]:
    """A CMMLU test file with up to ``shots`` solved examples from ``../dev/<same name>.csv`` when it exists."""
    examples = read_cmmlu_csv(path)[:limit]
    dev = path.parent.parent / "dev" / path.name
    shot_examples = read_cmmlu_csv(dev)[:shots] if shots and dev.is_file() and dev != path else []
    for example in examples:
        example.shots = shot_examples
    return examples
