"""A service assistant from the Schema-Guided Dialogue set (users and an assistant for restaurants, banks,
flights, ...) and CrossWOZ (Chinese dialogues about Beijing attractions, restaurants, hotels, metro, taxis).

The assistant is given what its service decided, as a task-oriented dialogue system is: the user turn before
each assistant turn ends with a ``Service result:`` line (``服务结果：`` in CrossWOZ) listing the dialogue acts of
the reply (SGD ``frames[].actions``: act, slot = values; CrossWOZ ``dialog_act``: intent, domain, slot = value),
which carry the database's answers (names, times, prices). The model's task is the reply that says them, the
setting of SGD's natural language generation task (Kale and Rastogi, 2020: "Template Guided Text Generation
for Task-Oriented Dialogue"), and slot mention is one minus its slot error rate. Without the result most values a
reply names exist only in the service's database: of 263 values in 102 scored SGD test turns, 54 had been said
earlier in the dialogue (measured, docs/apps.md).

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
          "services. The user's message ends with a 'Service result:' line: what the service decided for your "
          "reply (actions such as INFORM, OFFER, CONFIRM, REQUEST, with slot = value). Reply in one or two short "
          "sentences that say every value in it.")
CROSSWOZ_PROMPT = ("你是北京旅游出行的客服助手，负责景点、餐馆、酒店、地铁和出租车。用户消息的最后一行“服务结果：”"
                   "列出系统为你的回复查到和决定的内容（意图 领域 槽位 = 值）。"
                   "用一两句简短的中文回复，说出其中的每个值。")
# How the service result line opens, per source: English for SGD, Chinese for CrossWOZ
RESULT_LABEL = {"en": "Service result: ", "zh": "服务结果："}
SGD_ROLES = {"USER": "user", "SYSTEM": "assistant"}
CROSSWOZ_ROLES = {"usr": "user", "sys": "assistant"}
# CrossWOZ act values that are not words the answer says: no value, "none found", and yes/no of a facility
UNSAID_VALUES = {"", "none", "无", "是", "否"}

Dialogue = tuple[str, list[dict], dict]  # (dialogue id, turns as role/content/values/acts, source position)


# SGD values that are not words a turn says: booleans (``has_vegetarian_options = False`` is said "they do
# not serve vegetarian") and intent names (``OFFER_INTENT intent = BuyEventTickets``). On the SGD test set the
# reference turns say 0 of these 275 and all 2,698 other values.
UNSAID_SGD_VALUES = {"True", "False"}


def sgd_turn_acts(turn: dict) -> dict:
    """``{"values", "acts"}`` of an SGD turn: the slot values it says and its actions as one line, from one walk
    over its frames.

    The values are every value of every action, in order, once, without booleans and intent names; the line
    is ``OFFER restaurant_name = Little Hunan; REQUEST time``."""
    values: list[str] = []
    acts = []
    for frame in turn.get("frames") or []:
        for action in frame.get("actions") or []:
            slot = str(action.get("slot") or "")
            action_values = [v for v in action.get("values") or [] if isinstance(v, str)]
            if slot != "intent":
                values += [v for v in action_values if v not in UNSAID_SGD_VALUES and v not in values]
            acts.append(" ".join(filter(None, [str(action.get("act") or ""), slot]))
                        + (f" = {', '.join(action_values)}" if action_values else ""))
    return {"values": values, "acts": "; ".join(a for a in acts if a)}


def crosswoz_turn_acts(acts: list) -> dict | None:
    """``{"values", "acts"}`` of a CrossWOZ turn: the values it says (in order, once) and its dialogue acts
    (``[intent, domain, slot, value]``) as one line, ``Inform 餐馆 名称 = 讲礼驴肉馆; NoOffer 餐馆``; None when
    an act is not such a list."""
    values: list[str] = []
    parts = []
    for act in acts:
        if not isinstance(act, list) or len(act) != 4 or not all(isinstance(part, str) for part in act):
            return None
        said = act[3].strip() not in UNSAID_VALUES
        if said and act[3] not in values:
            values.append(act[3])
        head = " ".join(part for part in act[:3] if part.strip() not in UNSAID_VALUES)
        parts.append(head + (f" = {act[3]}" if said else ""))
    return {"values": values, "acts": "; ".join(parts)}


def sgd_dialogues(name: str, paths: list[Path], rejects: list[dict]) -> tuple[list[Dialogue], Source]:
    """``(dialogue id, turns as messages with their values, source position)`` of every well-formed dialogue."""
    seen, dialogues = Source(name), []
    for row, where in source_rows(paths, seen, rejects):
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns:
            reject(seen, rejects, "missing_field", "a dialogue needs a non-empty 'turns' list", row, where)
            continue
        messages = [{"role": SGD_ROLES.get(t.get("speaker")), "content": str(t.get("utterance") or "").strip(),
                     **sgd_turn_acts(t)} for t in turns if isinstance(t, dict)]
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
                         "said": crosswoz_turn_acts(t.get("dialog_act") or [])} for t in turns if isinstance(t, dict)]
            if len(messages) != len(turns) or any(m["role"] is None or not m["content"] or m["said"] is None
                                                  for m in messages):
                reject(seen, rejects, "bad_turn", "every turn needs role usr or sys, content and a dialog_act list "
                       "of [intent, domain, slot, value]", dialogue, place)
                continue
            for message in messages:
                message.update(message.pop("said"))
            dialogues.append((dialogue_id, messages, place))
            seen.records += 1
    return dialogues, seen


def with_results(turns: list[dict], direction: str) -> list[dict]:
    """Role/content turns; a user turn that an assistant turn with acts follows ends with the service result
    line of that reply (its acts)."""
    label = RESULT_LABEL[direction]
    messages = []
    for i, turn in enumerate(turns):
        content = turn["content"]
        following = turns[i + 1] if i + 1 < len(turns) else None
        if turn["role"] == "user" and following and following["role"] == "assistant" and following["acts"]:
            content = f"{content}\n\n{label}{following['acts']}"
        messages.append({"role": turn["role"], "content": content})
    return messages


def training_record(prefix: str, dialogue: Dialogue, system: dict, direction: str, **meta: str) -> dict:
    """A whole dialogue after the system prompt: every assistant turn is a training target."""
    dialogue_id, turns, where = dialogue
    return record(f"{prefix}-{dialogue_id}", [system, *with_results(turns, direction)], where, direction=direction,
                  **meta)


def turn_items(prefix: str, dialogues: list[Dialogue], system: dict, history: int, direction: str,
               **meta: str) -> list[dict]:
    """One item per assistant turn after the first turn: up to ``history`` turns before it (opening with a user
    turn), then the reference turn with its slot values."""
    items = []
    for dialogue_id, turns, where in dialogues:
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant" or i == 0:
                continue
            start = max(0, i - history)
            start += turns[start]["role"] != "user"  # the context opens with a user turn
            items.append(record(f"{prefix}-{dialogue_id}-{i}", [system, *with_results(turns[start:i + 1], direction)],
                                {**where, "turn": i}, slot_values=turn["values"], direction=direction, **meta))
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
