"""Source formats <-> canonical records: detection, mapping, and lossless round trips field by field."""

from __future__ import annotations

import json

import pytest

from oidkit.io import read_records, write_records
from oidkit.records import ROLES, conversation_problems, extend_role_map

# an OpenAI conversation with one tool call, its result and the answer
ADD_TOOL_CALL = [{"role": "user", "content": "2+2?"},
                 {"role": "assistant", "content": None,
                  "tool_calls": [{"id": "c1", "type": "function",
                                  "function": {"name": "add", "arguments": "{\"a\": 2}"}}]},
                 {"role": "tool", "content": "4", "tool_call_id": "c1"},
                 {"role": "assistant", "content": "4"}]

ALPACA_ROWS = [
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Name a prime.", "input": "", "output": "7"},
    {"instruction": "Continue.", "output": "3", "history": [["1", "2"], ["and?", "ok"]], "system": "Be terse."},
    {"instruction": "Describe.", "input": "x", "output": "y", "category": "open_qa", "extra": {"k": [1, 2]}},
    {"instruction": "What is in <image>?", "input": "", "output": "Two people.", "images": ["mllm_demo_data/1.jpg"]},
    {"instruction": "Keep me.", "input": "", "output": "ok", "system": "", "history": []},
    {"instruction": "No input key.", "output": "fine", "id": "alpaca-7"},
]

SHAREGPT_ROWS = [
    {"id": "a1", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
    {"id": "a2", "conversations": [{"from": "system", "value": "sys"}, {"from": "user", "value": "q"},
                                   {"from": "chatgpt", "value": "a", "markdown": {"html": "<p>a</p>"}}]},
    {"conversations": [{"from": "Human", "value": "x"}, {"from": "bing", "value": "y"}], "lang": "en"},
    {"conversations": [{"from": "human", "value": "<image>Who?"}, {"from": "gpt", "value": "Them."}],
     "system": "You see images.", "images": ["a.jpg"], "videos": ["b.mp4"]},
    {"conversations": [{"from": "human", "value": "weather in Paris?"},
                       {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
                       {"from": "observation", "value": '{"temp": 21}'},
                       {"from": "gpt", "value": "21 degrees."}],
     "tools": '[{"name": "weather", "parameters": {"type": "object"}}]'},
]


def write_json(path, rows, jsonl=False) -> str:
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) if jsonl else json.dumps(rows, indent=2)
    path.write_text(text, encoding="utf-8")
    return str(path)


def round_trip(tmp_path, rows, out_name):
    rejects = []
    records = list(read_records(write_json(tmp_path / "in.data", rows), on_reject=rejects.append))
    assert rejects == []
    [out] = write_records(records, tmp_path / out_name)
    return records, json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("rows", "name"), [(ALPACA_ROWS, "out.alpaca.json"), (SHAREGPT_ROWS, "out.sharegpt.json")],
                         ids=["alpaca", "sharegpt"])
def test_round_trip_is_lossless_field_by_field(tmp_path, rows, name):
    _, back = round_trip(tmp_path, rows, name)
    assert len(back) == len(rows)
    for original, written in zip(rows, back, strict=True):
        assert written.keys() == original.keys()
        for field in original:
            assert written[field] == original[field], field


def test_alpaca_mapping_to_canonical(tmp_path):
    records, _ = round_trip(tmp_path, ALPACA_ROWS, "out.alpaca.json")
    first = records[0]
    assert first["messages"] == [{"role": "user", "content": "Translate to French.\n\nGood morning"},
                                 {"role": "assistant", "content": "Bonjour"}]
    assert first["source"]["format"] == "alpaca" and first["source"]["index"] == 0
    history = records[2]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert records[3]["meta"]["category"] == "open_qa" and records[3]["meta"]["extra"] == {"k": [1, 2]}
    assert records[4]["media"] == {"images": ["mllm_demo_data/1.jpg"]}
    assert "<image>" in records[4]["messages"][0]["content"]
    assert records[6]["id"] == "alpaca-7"


def test_sharegpt_mapping_keeps_roles_media_and_tool_calls(tmp_path):
    records, _ = round_trip(tmp_path, SHAREGPT_ROWS, "out.sharegpt.json")
    assert records[0]["id"] == "a1"
    assert records[1]["messages"][2] == {"role": "assistant", "content": "a", "source_role": "chatgpt",
                                         "extra": {"markdown": {"html": "<p>a</p>"}}}
    assert records[2]["meta"] == {"lang": "en", "_layout": {"id": "generated"}}
    assert records[3]["media"] == {"images": ["a.jpg"], "videos": ["b.mp4"]}
    assert records[3]["messages"][0] == {"role": "system", "content": "You see images."}
    tool = records[4]
    assert [m["role"] for m in tool["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert tool["messages"][1]["tool_calls"] == [{"name": "weather", "arguments": {"city": "Paris"}}]
    assert tool["tools"] == SHAREGPT_ROWS[4]["tools"]
    assert conversation_problems(tool["messages"]) == []


def test_same_conversation_gets_the_same_content_id(tmp_path):
    rows = [{"instruction": "a", "input": "", "output": "b"}] * 2 + [{"instruction": "a", "input": "", "output": "c"}]
    ids = [r["id"] for r in read_records(write_json(tmp_path / "x", rows, jsonl=True))]
    assert ids[0] == ids[1] != ids[2]


def test_sharegpt_with_tools_to_openai_uses_openai_tool_call_shape(tmp_path):
    records = list(read_records(write_json(tmp_path / "x", SHAREGPT_ROWS[4:], jsonl=True)))
    [out] = write_records(records, tmp_path / "out.openai.jsonl")
    row = json.loads(out.read_text())
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert row["messages"][1]["content"] is None
    call = row["messages"][1]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert row["tools"] == SHAREGPT_ROWS[4]["tools"]


def test_openai_chat_round_trip_keeps_null_content_and_extra_keys(tmp_path):
    rows = [{"messages": ADD_TOOL_CALL,
             "tools": [{"type": "function", "function": {"name": "add"}}]}]
    records = list(read_records(write_json(tmp_path / "x", rows, jsonl=True)))
    assert records[0]["source"]["format"] == "openai"
    [out] = write_records(records, tmp_path / "out.openai.jsonl")
    assert json.loads(out.read_text()) == rows[0]


@pytest.mark.parametrize(("row", "format", "messages"), [
    ({"instruction": "i", "context": "c", "response": "r", "category": "qa"}, "dolly",
     [{"role": "user", "content": "i\n\nc"}, {"role": "assistant", "content": "r"}]),
    ({"prompt": "p", "completion": "c"}, "prompt_completion",
     [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}]),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}, "openai",
     [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]),
])
def test_formats_are_detected_from_content_not_names(tmp_path, row, format, messages):
    path = write_json(tmp_path / "data.txt", [row], jsonl=True)
    [record] = read_records(path)
    assert record["source"]["format"] == format
    assert record["messages"] == messages


def test_dolly_to_alpaca_carries_context_into_input(tmp_path):
    rows = [{"instruction": "Who?", "context": "Ada wrote it.", "response": "Ada", "category": "closed_qa"}]
    records = list(read_records(write_json(tmp_path / "d.jsonl", rows, jsonl=True)))
    [out] = write_records(records, tmp_path / "out.alpaca.json")
    assert json.loads(out.read_text()) == [{"instruction": "Who?", "input": "Ada wrote it.", "output": "Ada",
                                            "category": "closed_qa"}]


def test_oasst_tree_flattens_to_one_conversation_per_path(tmp_path):
    tree = {"message_tree_id": "t1", "prompt": {
        "message_id": "m1", "role": "prompter", "text": "Q", "lang": "en", "replies": [
            {"message_id": "m2", "role": "assistant", "text": "A1", "rank": 0, "replies": [
                {"message_id": "m4", "role": "prompter", "text": "Q2", "replies": [
                    {"message_id": "m5", "role": "assistant", "text": "A3", "replies": []}]}]},
            {"message_id": "m3", "role": "assistant", "text": "A2", "rank": 1, "replies": []}]}}
    records = list(read_records(write_json(tmp_path / "t.jsonl", [tree], jsonl=True)))
    assert [r["id"] for r in records] == ["m5", "m3"]
    assert [m["content"] for m in records[0]["messages"]] == ["Q", "A1", "Q2", "A3"]
    assert records[1]["meta"]["oasst_nodes"][1]["rank"] == 1


def test_oasst_flat_message_rows_are_rebuilt_into_trees(tmp_path):
    rows = [{"message_id": "m1", "parent_id": None, "message_tree_id": "t1", "role": "prompter", "text": "Q"},
            {"message_id": "m2", "parent_id": "m1", "message_tree_id": "t1", "role": "assistant", "text": "A"},
            {"message_id": "m3", "parent_id": "m1", "message_tree_id": "t1", "role": "assistant", "text": "B"},
            {"message_id": "n1", "parent_id": None, "message_tree_id": "t2", "role": "prompter", "text": "Q2"},
            {"message_id": "n2", "parent_id": "n1", "message_tree_id": "t2", "role": "assistant", "text": "C"}]
    records = list(read_records(write_json(tmp_path / "flat.jsonl", rows, jsonl=True)))
    assert [[m["content"] for m in r["messages"]] for r in records] == [["Q", "A"], ["Q", "B"], ["Q2", "C"]]


def test_role_map_extension_turns_unknown_roles_into_known(tmp_path):
    rows = [{"conversations": [{"from": "narrator", "value": "s"}, {"from": "human", "value": "u"},
                               {"from": "gpt", "value": "a"}]}]
    path = write_json(tmp_path / "r.json", rows)
    rejects = []
    assert list(read_records(path, on_reject=rejects.append)) == []
    assert rejects[0]["reason"] == "unknown_role"
    [record] = read_records(path, role_map=extend_role_map({"narrator": "system"}))
    assert record["messages"][0] == {"role": "system", "content": "s", "source_role": "narrator"}
    assert all(m["role"] in ROLES for m in record["messages"])


def test_alpaca_writer_rejects_tool_turns_it_cannot_hold(tmp_path):
    records = list(read_records(write_json(tmp_path / "t.jsonl", SHAREGPT_ROWS[4:], jsonl=True)))
    problems = []
    [out] = write_records(records, tmp_path / "o.alpaca.json", on_reject=lambda r, p: problems.append(p.reason))
    assert problems == ["unsupported_by_format"] and json.loads(out.read_text()) == []


def test_openai_tool_calls_to_sharegpt_use_function_call_turns(tmp_path):
    rows = [{"messages": ADD_TOOL_CALL}]
    records = list(read_records(write_json(tmp_path / "x", rows, jsonl=True)))
    [out] = write_records(records, tmp_path / "out.sharegpt.json")
    [row] = json.loads(out.read_text())
    assert [t["from"] for t in row["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(row["conversations"][1]["value"]) == {"name": "add", "arguments": {"a": 2}}
    assert "tool_call_id" not in row["conversations"][2]  # OpenAI-only keys stay with the OpenAI format


def test_source_spellings_are_not_written_into_another_format(tmp_path):
    records = list(read_records(write_json(tmp_path / "s.json", SHAREGPT_ROWS[1:3])))
    [out] = write_records(records, tmp_path / "out.openai.jsonl")
    roles = [[m["role"] for m in json.loads(line)["messages"]] for line in out.read_text().splitlines()]
    assert roles == [["system", "user", "assistant"], ["user", "assistant"]]


@pytest.mark.parametrize("canonical", ["canon.jsonl", "canon.parquet"])
@pytest.mark.parametrize(("rows", "out_name"), [(ALPACA_ROWS, "out.alpaca.json"), (SHAREGPT_ROWS, "out.sharegpt.json")])
def test_round_trip_through_a_canonical_file_on_disk(tmp_path, canonical, rows, out_name):
    records = list(read_records(write_json(tmp_path / "in.data", rows)))
    [stored] = write_records(records, tmp_path / canonical)
    [out] = write_records(read_records(stored), tmp_path / out_name)
    assert json.loads(out.read_text(encoding="utf-8")) == rows


def test_llama_factory_mllm_demo_shape_keeps_images_through_openai_and_parquet(tmp_path):
    rows = [{"messages": [{"content": "<image>Who are they?", "role": "user"},
                          {"content": "They're Kane and Gretzka from Bayern Munich.", "role": "assistant"},
                          {"content": "What are they doing?<image>", "role": "user"},
                          {"content": "They are celebrating on the soccer field.", "role": "assistant"}],
             "images": ["mllm_demo_data/1.jpg", "mllm_demo_data/1.jpg"]}]
    records = list(read_records(write_json(tmp_path / "mllm_demo.json", rows)))
    assert records[0]["media"] == {"images": rows[0]["images"]}
    [stored] = write_records(records, tmp_path / "canon.parquet")
    [out] = write_records(read_records(stored), tmp_path / "out.openai.jsonl")
    assert json.loads(out.read_text()) == rows[0]
