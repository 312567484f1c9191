"""Content parts (OpenAI multimodal, value-style reasoning files) and the repairs of split conversations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.io import ReadStats, convert, read_records, write_records
from oidkit.io.repair import REJOIN_WINDOW
from oidkit.records import conversation_problems


def write_jsonl(path, rows) -> str:
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return str(path)


OPENAI_PARTS = [
    {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in "},
        {"type": "image_url", "image_url": {"url": "https://example.org/cat.png", "detail": "high"}},
        {"type": "text", "text": "? Compare with "},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": "Two cats."}]},
    {"messages": [{"role": "system", "content": "Transcribe."},
                  {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==",
                                                                                       "format": "wav"}},
                                               {"type": "text", "text": "What is said?"},
                                               {"type": "file", "file": {"file_id": "f-1"}}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]}]},
]
VALUE_PARTS = [
    {"id": "v1", "messages": [
        {"role": "user", "content": [{"type": "text", "value": "Weather in Paris?"}], "loss_weight": 0.0},
        {"role": "assistant", "content": [
            {"type": "reasoning", "value": "The user wants the weather; call the tool."},
            {"type": "tool_call", "value": {"name": "weather", "arguments": {"city": "Paris"}}}],
         "loss_weight": 1.0},
        {"role": "tool", "content": [{"type": "text", "value": "{\"temp\": 21}"}], "name": "weather"},
        {"role": "assistant", "content": [{"type": "reasoning", "value": "21 degrees. "},
                                          {"type": "reasoning", "value": "Answer briefly."},
                                          {"type": "text", "value": "It is 21 degrees."}],
         "loss_weight": 1.0}]},
    {"id": "v2", "messages": [{"role": "user", "content": [{"type": "text", "value": "Hi"}]},
                              {"role": "assistant", "content": [{"type": "text", "value": "Hello"}],
                               "loss_weight": 0.5}]},
]


def test_openai_parts_become_text_placeholders_and_media(tmp_path):
    rejects = []
    records = list(read_records(write_jsonl(tmp_path / "mm.jsonl", OPENAI_PARTS), on_reject=rejects.append))
    assert rejects == [] and len(records) == 2
    first, second = records
    assert first["messages"][0]["content"] == "What is in <image>? Compare with <image>"
    assert first["media"] == {"images": ["https://example.org/cat.png", "data:image/png;base64,iVBORw0KGgo="]}
    assert second["messages"][1]["content"] == "<audio>What is said?"
    assert second["messages"][2]["content"] == "Hello."
    assert second["media"] == {"audios": ["UklGRg=="]}
    assert all(conversation_problems(r["messages"]) == [] for r in records)


def test_value_parts_keep_reasoning_tool_calls_and_loss_weight(tmp_path):
    records = list(read_records(write_jsonl(tmp_path / "v.jsonl", VALUE_PARTS)))
    assert len(records) == 2
    call, _tool, answer = records[0]["messages"][1:]
    assert call["reasoning"] == "The user wants the weather; call the tool." and call["content"] == ""
    assert call["tool_calls"] == [{"name": "weather", "arguments": {"city": "Paris"}}]
    assert call["extra"] == {"loss_weight": 1.0}
    assert answer == {"role": "assistant", "content": "It is 21 degrees.",
                      "reasoning": "21 degrees. Answer briefly.", "extra": {"loss_weight": 1.0}}
    assert records[0]["messages"][0]["extra"] == {"loss_weight": 0.0}


@pytest.mark.parametrize("rows", [OPENAI_PARTS, VALUE_PARTS], ids=["openai", "value"])
@pytest.mark.parametrize("via", ["jsonl", "parquet"])
def test_parts_round_trip_field_by_field(tmp_path, rows, via):
    records = list(read_records(write_jsonl(tmp_path / "in.jsonl", rows)))
    [stored] = write_records(records, tmp_path / f"canon.{via}")
    assert list(read_records(stored)) == records
    [out] = write_records(read_records(stored), tmp_path / "out.openai.jsonl")
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(back) == len(rows)
    for got, expected in zip(back, rows, strict=True):
        assert got.keys() == expected.keys()
        for got_turn, turn in zip(got["messages"], expected["messages"], strict=True):
            assert got_turn == turn
            assert list(got_turn) == list(turn)  # same keys in the same order
    assert out.read_text() == "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
                                      for row in rows)


def test_other_formats_get_parts_or_inline_reasoning(tmp_path):
    records = list(read_records(write_jsonl(tmp_path / "v.jsonl", VALUE_PARTS)))
    [sharegpt] = write_records(records, tmp_path / "out.sharegpt.json")
    answer = json.loads(sharegpt.read_text())[0]["conversations"][3]
    assert answer == {"from": "gpt", "value": "<think>\n21 degrees. Answer briefly.\n</think>\n\nIt is 21 degrees."}
    llama_factory = [{"conversations": [{"from": "human", "value": "<image>Who?"}, {"from": "gpt", "value": "Them."}],
                      "images": ["a.jpg"]}]
    records = list(read_records(write_jsonl(tmp_path / "lf.jsonl", llama_factory)))
    [openai] = write_records(records, tmp_path / "out.openai.jsonl")
    row = json.loads(openai.read_text())
    assert row["messages"][0]["content"] == [{"type": "image_url", "image_url": {"url": "a.jpg"}},
                                             {"type": "text", "text": "Who?"}]
    assert "images" not in row  # the image went into the parts, not repeated on top


def test_edited_parts_content_is_split_at_placeholders(tmp_path):
    [record] = list(read_records(write_jsonl(tmp_path / "mm.jsonl", OPENAI_PARTS[:1])))
    record["messages"][0]["content"] = "Now: <image> and <image>!"
    [out] = write_records([record], tmp_path / "out.openai.jsonl")
    parts = json.loads(out.read_text())["messages"][0]["content"]
    assert parts == [{"type": "text", "text": "Now: "},
                     {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
                     {"type": "text", "text": " and "},
                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                     {"type": "text", "text": "!"}]


def test_bad_part_is_a_bad_type_reject(tmp_path):
    rows = [{"messages": [{"role": "user", "content": ["not a part"]}, {"role": "assistant", "content": "x"}]}]
    rejects = []
    assert list(read_records(write_jsonl(tmp_path / "b.jsonl", rows), on_reject=rejects.append)) == []
    assert rejects[0]["reason"] == "bad_type" and "part 0" in rejects[0]["detail"]


# --- repairs of split conversations ---------------------------------------------------------------

def turn(role: str, text: str) -> dict:
    return {"from": {"user": "human", "assistant": "gpt"}[role], "value": text}


CONVERSATION = [turn("user", "q1"), turn("assistant", "a1"), turn("user", "q2"), turn("assistant", "a2a"),
                turn("assistant", "a2b"), turn("user", "q3"), turn("assistant", "a3")]
# the dataset's split: chunk 1 starts with the second half of answer 2
CHUNKS = [{"id": "abc_0", "conversations": CONVERSATION[:4]}, {"id": "abc_1", "conversations": CONVERSATION[4:]}]
STANDALONE = {"id": "solo", "conversations": [turn("user", "hi"), turn("assistant", "hello")]}


def contents(record: dict) -> list[str]:
    return [m["content"] for m in record["messages"]]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["in_order", "out_of_order"])
def test_rejoin_joins_chunks_back_into_the_conversation(tmp_path, order):
    rows = [CHUNKS[order[0]], STANDALONE, CHUNKS[order[1]]]
    stats = ReadStats()
    records = list(read_records(write_jsonl(tmp_path / "s.jsonl", rows), stats=stats))
    joined = next(r for r in records if r["id"] == "abc_0")
    assert contents(joined) == ["q1", "a1", "q2", "a2a\n\na2b", "q3", "a3"]
    assert [r["repair"] for r in joined["meta"]["repairs"]] == ["rejoin", "merge_consecutive"]
    assert joined["meta"]["repairs"][0]["ids"] == ["abc_0", "abc_1"]
    assert len(records) == 2 and conversation_problems(joined["messages"]) == []
    summary = stats.as_dict()
    assert summary["repaired"] == {"rejoin": 1, "merge_consecutive": 1} and summary["joined_rows"] == 1
    assert summary["rows"] == summary["records"] + sum(summary["rejected"].values()) + summary["joined_rows"]


def test_chunk_without_its_start_drops_the_leading_assistant_turn(tmp_path):
    stats = ReadStats()
    [record] = list(read_records(write_jsonl(tmp_path / "s.jsonl", [CHUNKS[1]]), stats=stats))
    assert contents(record) == ["q3", "a3"]
    assert record["meta"]["repairs"] == [{"repair": "drop_leading_assistant",
                                          "turns": [{"role": "assistant", "content": "a2b"}]}]
    assert stats.as_dict()["repaired"] == {"drop_leading_assistant": 1}


def test_missing_middle_chunk_is_not_bridged(tmp_path):
    chunk_2 = {"id": "abc_2", "conversations": [turn("assistant", "a4"), turn("user", "q5"), turn("assistant", "a5")]}
    records = list(read_records(write_jsonl(tmp_path / "s.jsonl", [CHUNKS[0], chunk_2])))
    assert [contents(r) for r in records] == [["q1", "a1", "q2", "a2a"], ["q5", "a5"]]


def test_unrelated_numbered_ids_that_stand_alone_are_not_joined(tmp_path):
    rows = [{"id": f"identity_{n}", "conversations": [turn("user", f"q{n}"), turn("assistant", f"a{n}")]}
            for n in range(3)]
    records = list(read_records(write_jsonl(tmp_path / "s.jsonl", rows)))
    assert [r["id"] for r in records] == ["identity_0", "identity_1", "identity_2"]
    assert all("repairs" not in r["meta"] for r in records)


def test_consecutive_user_turns_are_merged(tmp_path):
    row = {"id": "u", "conversations": [turn("user", "part one"), turn("user", "part two"), turn("assistant", "ok")]}
    [record] = list(read_records(write_jsonl(tmp_path / "s.jsonl", [row])))
    assert contents(record) == ["part one\n\npart two", "ok"]
    assert record["meta"]["repairs"] == [{"repair": "merge_consecutive", "turns": [0]}]


def test_chunks_further_apart_than_the_window_stay_separate(tmp_path, monkeypatch):
    monkeypatch.setattr("oidkit.io.repair.REJOIN_WINDOW", 2)
    assert REJOIN_WINDOW > 2
    filler = [{"id": f"f{n}", "conversations": STANDALONE["conversations"]} for n in range(3)]
    records = list(read_records(write_jsonl(tmp_path / "s.jsonl", [CHUNKS[0], *filler, CHUNKS[1]])))
    assert [r["id"] for r in records] == ["abc_0", "f0", "f1", "f2", "abc_1"]  # input order kept
    assert [r["repair"] for r in records[-1]["meta"]["repairs"]] == ["drop_leading_assistant"]


def test_selected_policies_and_no_repair(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [*CHUNKS, STANDALONE])
    only_drop = convert(src, tmp_path / "a.jsonl", repairs="drop_leading_assistant")
    assert only_drop["repaired"] == {"drop_leading_assistant": 1} and only_drop["written"] == 3
    result = CliRunner().invoke(app, ["convert", src, str(tmp_path / "b.jsonl"), "--no-repair"])
    assert result.exit_code == 0 and "wrote 2 records" in result.output
    assert json.loads((tmp_path / "b.rejects.jsonl").read_text())["reason"] == "non_alternating"
    result = CliRunner().invoke(app, ["inspect", src, "--json"])
    summary = json.loads(result.stdout)
    assert summary["repaired"] == {"rejoin": 1, "merge_consecutive": 1} and summary["records"] == 2
    result = CliRunner().invoke(app, ["validate", src, "--repair", "rejoin,bogus"])
    assert result.exit_code == 2 and "unknown repair bogus" in result.output and "Traceback" not in result.output


@pytest.mark.real
def test_real_sharegpt_is_95_percent_usable_with_every_repair_counted(sharegpt_file, tmp_path):
    summary = convert(sharegpt_file, tmp_path / "sharegpt.parquet", salvage=True)
    complete = 17_671
    rejected = sum(n for reason, n in summary["rejected"].items() if reason != "truncated")
    assert summary["rows"] == complete + 1 and summary["rejected"]["truncated"] == 1  # the cut tail is a row too
    assert summary["records"] + rejected + summary["joined_rows"] == complete  # every row accounted
    usable = summary["records"] + summary["joined_rows"]  # rows that are (part of) a written record
    assert usable / complete >= 0.95
    assert set(summary["repaired"]) == {"rejoin", "drop_leading_assistant", "merge_consecutive"}
    lines = Path(summary["rejects_file"]).read_text(encoding="utf-8").splitlines()
    rejects = [json.loads(line)["record"] for line in lines]
    repaired = [r for r in [*read_records(summary["outputs"][0]), *rejects]
                if isinstance(r, dict) and r.get("meta", {}).get("repairs")]
    kinds = [repair["repair"] for r in repaired for repair in r["meta"]["repairs"]]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == summary["repaired"]
    assert sum(len(repair["ids"]) - 1 for r in repaired for repair in r["meta"]["repairs"]
               if repair["repair"] == "rejoin") == summary["joined_rows"]
    unrepaired = convert(sharegpt_file, tmp_path / "raw.parquet", salvage=True, repairs=())
    assert unrepaired["records"] == 11_147 and unrepaired["rejected"]["non_alternating"] == 6_382
