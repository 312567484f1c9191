"""A service assistant from the Schema-Guided Dialogue set (users and an assistant for restaurants, banks,
flights, ...).

Training: one record per SGD train dialogue, USER turns as ``user`` and SYSTEM turns as ``assistant``
(the loss falls on every assistant turn, so each SYSTEM turn is a target given the dialogue so far).
Test: one record per sampled SYSTEM turn of the SGD test dialogues: the last ``history`` turns before it,
then the reference turn; ``meta.slot_values`` holds the values that turn acts on (``frames[].actions[].values``).
"""

from __future__ import annotations

import random
from pathlib import Path

from oidkit.apps import Built, Source, record, reject, source_rows

PROMPT = ("You are a customer service assistant for restaurants, banks, flights, hotels, events and other "
          "services. Help the user finish their task: ask for missing details, offer options with their names, "
          "times and prices, and confirm what you booked. Reply in one or two short sentences.\n"
          "你是餐厅、银行、航班、酒店、活动等服务的客服助手。帮助用户完成任务：询问缺少的信息，给出带名称、时间和价格的"
          "选项，并确认已办理的事项。用一两句简短的话回复。")
ROLES = {"USER": "user", "SYSTEM": "assistant"}


def turn_values(turn: dict) -> list[str]:
    """The slot values a turn acts on: every value of every action of every frame, in order, once."""
    values: list[str] = []
    for frame in turn.get("frames") or []:
        for action in frame.get("actions") or []:
            values += [v for v in action.get("values") or [] if isinstance(v, str) and v not in values]
    return values


def sgd_dialogues(name: str, paths: list[Path], rejects: list[dict]) -> tuple[list[tuple[str, list, dict]], Source]:
    """``(dialogue id, turns as messages with their values, source position)`` of every well-formed dialogue."""
    seen, dialogues = Source(name), []
    for row, where in source_rows(paths, seen, rejects):
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns:
            reject(seen, rejects, "missing_field", "a dialogue needs a non-empty 'turns' list", row, where)
            continue
        messages = [{"role": ROLES.get(t.get("speaker")), "content": str(t.get("utterance") or "").strip(),
                     "values": turn_values(t)} for t in turns if isinstance(t, dict)]
        problem = next((m for m in messages if m["role"] is None or not m["content"]), None)
        if problem is not None or len(messages) != len(turns):
            reject(seen, rejects, "bad_turn", "every turn needs speaker USER or SYSTEM and an utterance", row, where)
            continue
        dialogues.append((str(row.get("dialogue_id", where.get("index"))), messages, where))
        seen.records += 1
    return dialogues, seen


def build(files: dict[str, list[Path]], sizes: dict, seed: int) -> Built:
    """``files``: train, test (lists of SGD JSON files); ``sizes``: train dialogues, test turns, history turns."""
    rejects: list[dict] = []
    system = {"role": "system", "content": PROMPT}
    train_dialogues, s1 = sgd_dialogues("sgd_train", files["train"], rejects)
    test_dialogues, s2 = sgd_dialogues("sgd_test", files["test"], rejects)
    train = [record(f"sgd-{d}", [system] + [{"role": m["role"], "content": m["content"]} for m in turns], where)
             for d, turns, where in train_dialogues]
    test = []
    for dialogue_id, turns, where in test_dialogues:
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant" or i == 0:
                continue
            start = max(0, i - sizes["history"])
            start += turns[start]["role"] != "user"  # the context opens with a user turn
            context = [{"role": m["role"], "content": m["content"]} for m in turns[start:i + 1]]
            test.append(record(f"sgd-{dialogue_id}-{i}", [system, *context], {**where, "turn": i},
                               slot_values=turn["values"]))
    random.Random(seed).shuffle(train)
    test = random.Random(seed).sample(test, min(sizes["test"], len(test)))
    return Built(train[:sizes.get("train")], test, [s1, s2], rejects, PROMPT)
