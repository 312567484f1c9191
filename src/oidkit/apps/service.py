"""A service assistant from the Schema-Guided Dialogue set (users and an assistant for restaurants, banks,
flights, ...) and CrossWOZ (Chinese dialogues about Beijing attractions, restaurants, hotels, metro, taxis).

Training: one record per SGD train dialogue and per CrossWOZ training dialogue, user turns as ``user`` and
system turns as ``assistant`` (the loss falls on every assistant turn, so each system turn is a target given
the dialogue so far). CrossWOZ ships one split here (validation, 500 dialogues): a seeded share of its
dialogues is held out for testing and never trained on.
Test: one record per sampled system turn of the SGD test dialogues (group ``service``) and of the held-out
CrossWOZ dialogues (group ``crosswoz``): the last ``history`` turns before it, then the reference turn;
``meta.slot_values`` holds the values that turn acts on (SGD ``frames[].actions[].values``, CrossWOZ
``dialog_act`` values). ``meta.direction`` (the answer's language) keeps few-shot examples in the item's language.
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
CROSSWOZ_PROMPT = ("你是北京旅游出行的客服助手，负责景点、餐馆、酒店、地铁和出租车。根据用户的需求推荐具体的地点，"
                   "并准确告知名称、地址、电话、价格、评分、营业时间等信息。用一两句简短的中文回复。")
SGD_ROLES = {"USER": "user", "SYSTEM": "assistant"}
CROSSWOZ_ROLES = {"usr": "user", "sys": "assistant"}
# CrossWOZ act values that are not words the answer says: no value, "none found", and yes/no of a facility
UNSAID_VALUES = {"", "none", "无", "是", "否"}

Dialogue = tuple[str, list[dict], dict]  # (dialogue id, turns as role/content/values, source position)


def turn_values(turn: dict) -> list[str]:
    """The slot values an SGD turn acts on: every value of every action of every frame, in order, once."""
    values: list[str] = []
    for frame in turn.get("frames") or []:
        for action in frame.get("actions") or []:
            values += [v for v in action.get("values") or [] if isinstance(v, str) and v not in values]
    return values


def act_values(acts: list) -> list[str] | None:
    """The values a CrossWOZ turn acts on (``[intent, domain, slot, value]``), in order, once; None when an act
    is not such a list."""
    values: list[str] = []
    for act in acts:
        if not isinstance(act, list) or len(act) != 4 or not all(isinstance(part, str) for part in act):
            return None
        if act[3].strip() not in UNSAID_VALUES and act[3] not in values:
            values.append(act[3])
    return values


def sgd_dialogues(name: str, paths: list[Path], rejects: list[dict]) -> tuple[list[Dialogue], Source]:
    """``(dialogue id, turns as messages with their values, source position)`` of every well-formed dialogue."""
    seen, dialogues = Source(name), []
    for row, where in source_rows(paths, seen, rejects):
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns:
            reject(seen, rejects, "missing_field", "a dialogue needs a non-empty 'turns' list", row, where)
            continue
        messages = [{"role": SGD_ROLES.get(t.get("speaker")), "content": str(t.get("utterance") or "").strip(),
                     "values": turn_values(t)} for t in turns if isinstance(t, dict)]
        problem = next((m for m in messages if m["role"] is None or not m["content"]), None)
        if problem is not None or len(messages) != len(turns):
            reject(seen, rejects, "bad_turn", "every turn needs speaker USER or SYSTEM and an utterance", row, where)
            continue
        dialogues.append((str(row.get("dialogue_id", where.get("index"))), messages, where))
        seen.records += 1
    return dialogues, seen


def crosswoz_dialogues(name: str, path: Path, rejects: list[dict]) -> tuple[list[Dialogue], Source]:
    """The dialogues of a CrossWOZ file (one JSON object: dialogue id -> dialogue); each dialogue is a row."""
    seen, dialogues = Source(name), []
    for row, where in source_rows(path, seen, rejects):
        if not isinstance(row, dict):
            reject(seen, rejects, "not_an_object", "CrossWOZ is one object of dialogue id -> dialogue", row, where)
            continue
        seen.rows += len(row) - 1  # the object was counted as one row; its dialogues are the rows
        for dialogue_id, dialogue in row.items():
            place = {**where, "dialogue": dialogue_id}
            turns = dialogue.get("messages") if isinstance(dialogue, dict) else None
            if not isinstance(turns, list) or not turns:
                reject(seen, rejects, "missing_field", "a dialogue needs a non-empty 'messages' list", dialogue, place)
                continue
            messages = [{"role": CROSSWOZ_ROLES.get(t.get("role")), "content": str(t.get("content") or "").strip(),
                         "values": act_values(t.get("dialog_act") or [])} for t in turns if isinstance(t, dict)]
            if len(messages) != len(turns) or any(m["role"] is None or not m["content"] or m["values"] is None
                                                  for m in messages):
                reject(seen, rejects, "bad_turn", "every turn needs role usr or sys, content and a dialog_act list "
                       "of [intent, domain, slot, value]", dialogue, place)
                continue
            dialogues.append((dialogue_id, messages, place))
            seen.records += 1
    return dialogues, seen


def training_record(prefix: str, dialogue: Dialogue, system: dict, **meta: str) -> dict:
    """A whole dialogue after the system prompt: every assistant turn is a training target."""
    dialogue_id, turns, where = dialogue
    return record(f"{prefix}-{dialogue_id}", [system] + [{"role": m["role"], "content": m["content"]} for m in turns],
                  where, **meta)


def turn_items(prefix: str, dialogues: list[Dialogue], system: dict, history: int, **meta: str) -> list[dict]:
    """One item per assistant turn after the first turn: up to ``history`` turns before it (opening with a user
    turn), then the reference turn with its slot values."""
    items = []
    for dialogue_id, turns, where in dialogues:
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant" or i == 0:
                continue
            start = max(0, i - history)
            start += turns[start]["role"] != "user"  # the context opens with a user turn
            context = [{"role": m["role"], "content": m["content"]} for m in turns[start:i + 1]]
            items.append(record(f"{prefix}-{dialogue_id}-{i}", [system, *context], {**where, "turn": i},
                                slot_values=turn["values"], **meta))
    return items


def build(files: dict[str, Path | list[Path]], sizes: dict, seed: int) -> Built:
    """``files``: train, test (SGD JSON files), crosswoz (the CrossWOZ zip); ``sizes``: train (SGD dialogues),
    test (SGD turns), history (turns), crosswoz_test_dialogues (held out), crosswoz_train (dialogues),
    crosswoz_test (turns)."""
    rejects: list[dict] = []
    system = {"role": "system", "content": PROMPT}
    train_dialogues, s1 = sgd_dialogues("sgd_train", files["train"], rejects)
    test_dialogues, s2 = sgd_dialogues("sgd_test", files["test"], rejects)
    train = [training_record("sgd", d, system, direction="en") for d in train_dialogues]
    random.Random(seed).shuffle(train)
    test = turn_items("sgd", test_dialogues, system, sizes["history"], direction="en")
    test = random.Random(seed).sample(test, min(sizes["test"], len(test)))

    crosswoz, s3 = crosswoz_dialogues("crosswoz", files["crosswoz"], rejects)
    zh_system = {"role": "system", "content": CROSSWOZ_PROMPT}
    random.Random(seed).shuffle(crosswoz)  # a seeded split of dialogues: held-out ones are never trained on
    held_out, rest = crosswoz[:sizes["crosswoz_test_dialogues"]], crosswoz[sizes["crosswoz_test_dialogues"]:]
    zh_train = [training_record("crosswoz", d, zh_system, direction="zh") for d in rest]
    zh_test = turn_items("crosswoz", held_out, zh_system, sizes["history"], direction="zh", test_set="crosswoz")
    zh_test = random.Random(seed).sample(zh_test, min(sizes["crosswoz_test"], len(zh_test)))
    mixed = train[:sizes.get("train")] + zh_train[:sizes.get("crosswoz_train")]
    random.Random(seed).shuffle(mixed)
    return Built(mixed, test + zh_test, [s1, s2, s3], rejects, PROMPT)
