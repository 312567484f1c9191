"""Dialogue summarisation from DialogSum: a dialogue in, a short third-person summary out.

Training: DialogSum train (its lines are Python dict literals, as the authors ship them: oidkit's readers
take them). Test: DialogSum test, whose three human summaries (``summary1..3``) are all kept as references
in ``meta.references``; the first is the record's assistant turn.
"""

from __future__ import annotations

import random
from pathlib import Path

from oidkit.apps import Built, Source, record, reject, source_rows

PROMPT = ("Summarise the dialogue the user gives in one to three sentences, in the third person, naming the "
          "speakers as they are named in it (#Person1#, #Person2#).\n"
          "用一到三句话以第三人称概括用户给出的对话，沿用对话中的称呼（#Person1#、#Person2#）。")


def dialogsum_records(name: str, path: Path, summary_fields: list[str], rejects: list[dict]) -> tuple[list, Source]:
    """One record per row with a dialogue and at least one summary; other rows are rejected with the reason."""
    seen, records = Source(name), []
    # DialogSum's train lines are Python dict literals as its authors ship them (read safely, never eval'd)
    for row, where in source_rows(path, seen, rejects, python_literals=True):
        dialogue = row.get("dialogue") if isinstance(row, dict) else None
        summaries = [row[f].strip() for f in summary_fields if isinstance(row, dict) and str(row.get(f) or "").strip()]
        if not isinstance(dialogue, str) or not dialogue.strip() or not summaries:
            reject(seen, rejects, "missing_field", f"needs 'dialogue' and one of {summary_fields}", row, where)
            continue
        records.append(record(f"{name}-{row.get('fname', where.get('index'))}",
                              [{"role": "system", "content": PROMPT}, {"role": "user", "content": dialogue.strip()},
                               {"role": "assistant", "content": summaries[0]}],
                              where, references=summaries, topic=row.get("topic")))
        seen.records += 1
    return records, seen


def build(files: dict[str, Path], sizes: dict, seed: int) -> Built:
    """``files``: train, test; ``sizes``: train (None: all), test."""
    rejects: list[dict] = []
    train, s1 = dialogsum_records("dialogsum_train", files["train"], ["summary"], rejects)
    test, s2 = dialogsum_records("dialogsum_test", files["test"], ["summary1", "summary2", "summary3"], rejects)
    random.Random(seed).shuffle(train)
    test = random.Random(seed).sample(test, min(sizes["test"], len(test)))
    return Built(train[:sizes.get("train")], test, [s1, s2], rejects, PROMPT)
