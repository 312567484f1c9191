"""Files no known format names: column mappings, wrapper objects, zip archives, Python-literal lines, and the
LLaMA-Factory ``dataset_info.json`` written beside an output."""

from __future__ import annotations

import json
import zipfile

import pytest
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.errors import InputError
from oidkit.io import ReadStats, convert, read_records

runner = CliRunner()
QA = [("What is 2+2?", "4"), ("Capital of France?", "Paris")]


def turns(records: list[dict]) -> list[list[tuple[str, str]]]:
    return [[(m["role"], m["content"]) for m in r["messages"]] for r in records]


def qa_csv(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer,topic\n" + "".join(f'"{q}",{a},math\n' for q, a in QA), encoding="utf-8")
    return path


def test_inline_columns_read_a_csv_and_keep_other_fields_in_meta(tmp_path):
    records = list(read_records(qa_csv(tmp_path), columns="prompt=question,response=answer"))
    assert turns(records) == [[("user", q), ("assistant", a)] for q, a in QA]
    assert records[0]["meta"]["topic"] == "math" and records[0]["source"]["format"] == "columns"
    with pytest.raises(InputError, match="unknown mapping key 'answer_text'"):
        list(read_records(qa_csv(tmp_path), columns="prompt=question,answer_text=answer"))
    with pytest.raises(InputError, match="--columns"):  # without a mapping the error says how to give one
        list(read_records(qa_csv(tmp_path)))


def test_chat_columns_with_role_tags_read_task_dialogues(tmp_path):
    """SGD's shape: turns[{speaker USER/SYSTEM, utterance}], where SYSTEM is the dialogue system (assistant)."""
    rows = [{"dialogue_id": "1", "turns": [{"speaker": "USER", "utterance": "a table for two", "frames": [1]},
                                           {"speaker": "SYSTEM", "utterance": "where?", "frames": []}]}]
    path = tmp_path / "sgd.json"
    path.write_text(json.dumps(rows))
    mapping = "messages=turns,role=speaker,content=utterance,user_tag=USER,assistant_tag=SYSTEM"
    [record] = read_records(path, columns=mapping)
    assert turns([record]) == [[("user", "a table for two"), ("assistant", "where?")]]
    assert record["meta"]["dialogue_id"] == "1"
    assert record["messages"][0]["extra"] == {"frames": [1]}  # turn fields kept
    # without the tags, SYSTEM is read as a system prompt in the middle of the conversation
    rejects = []
    assert list(read_records(path, columns="messages=turns,role=speaker,content=utterance",
                             on_reject=rejects.append)) == []
    assert rejects[0]["reason"] == "system_not_first"


def test_mapping_from_a_yaml_file_and_from_a_dataset_info_entry(tmp_path):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"items": [{"prompt_text": q, "reply": a} for q, a in QA]}))
    (tmp_path / "mapping.yaml").write_text("field: items\ncolumns:\n  prompt: prompt_text\n  response: reply\n")
    expected = [[("user", q), ("assistant", a)] for q, a in QA]
    assert turns(read_records(data, columns=str(tmp_path / "mapping.yaml"))) == expected
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"other": {"file_name": "x.json"},
                                "mine": {"file_name": "data.json", "columns": {"prompt": "prompt_text",
                                                                               "response": "reply"}}}))
    assert turns(read_records(data, columns=f"{info}#mine")) == expected
    with pytest.raises(InputError, match="2 entries: name one"):
        list(read_records(data, columns=str(info)))


def test_a_wrapper_object_is_unwrapped_with_a_note_or_by_field(tmp_path):
    rows = [{"instruction": q, "output": a} for q, a in QA]
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"version": 2, "data": rows}, indent=2))
    stats = ReadStats()
    records = list(read_records(pretty, stats=stats))
    assert turns(records) == [[("user", q), ("assistant", a)] for q, a in QA]
    assert stats.files[0]["container"] == "json_object" and "'data'" in stats.files[0]["note"]
    assert records[1]["source"]["field"] == "data" and records[1]["source"]["index"] == 1
    one_line = tmp_path / "one_line.json"  # one line: looks like JSONL of one row
    one_line.write_text(json.dumps({"data": rows}))
    assert len(list(read_records(one_line))) == 2
    assert len(list(read_records(one_line, format="alpaca"))) == 2  # a forced format unwraps too
    single = tmp_path / "single.jsonl"  # one row that is a record is not mistaken for a wrapper
    single.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "hello"}]}) + "\n")
    assert turns(read_records(single)) == [[("user", "hi"), ("assistant", "hello")]]
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"train": {"rows": rows}, "test": {"rows": rows[:1]}}, indent=1))
    assert len(list(read_records(nested, field="test.rows"))) == 1
    with pytest.raises(InputError, match="no key 'dev'"):
        list(read_records(nested, field="dev"))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"data": rows}, indent=2)[:-5])
    with pytest.raises(InputError, match="not valid JSON"):
        list(read_records(broken))


def test_an_object_of_rows_keyed_by_id_gives_each_its_key_as_id(tmp_path):
    """CrossWOZ's shape: {dialogue id: {messages: [{role usr/sys, content}]}}."""
    dialogues = {"11": {"messages": [{"role": "usr", "content": "你好"}, {"role": "sys", "content": "您好"}]},
                 "12": {"messages": [{"role": "usr", "content": "谢谢"}, {"role": "sys", "content": "不客气"}]}}
    path = tmp_path / "val.json"
    path.write_text(json.dumps(dialogues, ensure_ascii=False, indent=1))
    records = list(read_records(path, role_map={"usr": "user", "sys": "assistant"}))
    assert [r["id"] for r in records] == ["11", "12"]
    assert turns(records)[1] == [("user", "谢谢"), ("assistant", "不客气")]
    assert records[0]["messages"][0]["source_role"] == "usr"


def test_every_json_member_of_a_zip_is_read_and_named_in_source(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.jsonl", "".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in QA))
        z.writestr("sub/b.json", json.dumps([{"instruction": "x", "output": "y"}]))
        z.writestr("__MACOSX/._a.jsonl", b"\x00\x05\x16\x07")  # macOS resource fork: not data
    records = list(read_records(archive))
    assert [r["source"]["file"] for r in records] == [f"{archive}/a.jsonl"] * 2 + [f"{archive}/sub/b.json"]
    assert turns(records)[2] == [("user", "x"), ("assistant", "y")]


def test_python_literal_lines_are_refused_with_the_cause_or_read_safely(tmp_path):
    path = tmp_path / "dialogsum.jsonl"
    rows = [{"fname": "train_0", "dialogue": "#Person1#: it's late", "summary": "late", "ok": True},
            {"fname": "train_1", "dialogue": 'say "hi"', "summary": "greeting", "ok": None}]
    marker = tmp_path / "ran"
    evil = f"{{'dialogue': __import__('pathlib').Path({str(marker)!r}).touch(), 'summary': 's'}}"
    path.write_text("".join(repr(r) + "\n" for r in rows) + evil + "\n")
    with pytest.raises(InputError, match="Python dict literal") as error:
        list(read_records(path, columns="prompt=dialogue,response=summary"))
    assert "--python-literals" in str(error.value) and "line 1" in str(error.value)
    rejects = []
    records = list(read_records(path, columns="prompt=dialogue,response=summary", python_literals=True,
                                on_reject=rejects.append))
    assert turns(records) == [[("user", r["dialogue"]), ("assistant", r["summary"])] for r in rows]
    assert records[0]["meta"]["ok"] is True
    assert [r["reason"] for r in rejects] == ["invalid_json"] and not marker.exists()  # never evaluated


@pytest.mark.parametrize("name", ["qa.alpaca.json", "qa.sharegpt.json", "qa.openai.jsonl"])
def test_dataset_info_entry_reads_the_written_file_back(tmp_path, name):
    """The entry's columns and tags describe the file: reading the file through the entry gives the records
    that reading it by its format gives."""
    out = tmp_path / "out" / name
    summary = convert(qa_csv(tmp_path), out, columns="prompt=question,response=answer", dataset_info=True)
    info = json.loads((out.parent / "dataset_info.json").read_text())
    entry = info[name.rsplit(".", 1)[0]]
    assert entry["file_name"] == name and summary["dataset_info"] == str(out.parent / "dataset_info.json")
    assert entry["formatting"] == ("alpaca" if "alpaca" in name else "sharegpt")
    written = [json.loads(line) for line in out.open()] if name.endswith("jsonl") else json.loads(out.read_text())
    keys = set().union(*written)
    assert set(entry["columns"].values()) <= keys  # only columns the file has
    if "tags" in entry:
        spoken = {turn[entry["tags"]["role_tag"]] for row in written for turn in row[entry["columns"]["messages"]]}
        assert spoken <= {entry["tags"]["user_tag"], entry["tags"]["assistant_tag"]}
    by_entry = list(read_records(out, columns=entry))
    assert turns(by_entry) == turns(read_records(out)) == [[("user", q), ("assistant", a)] for q, a in QA]


def test_dataset_info_keeps_other_entries_and_refuses_what_it_cannot_describe(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"theirs": {"file_name": "t.json"}}))
    convert(qa_csv(tmp_path), tmp_path / "mine.alpaca.json", columns="prompt=question,response=answer",
            dataset_info=True)
    assert set(json.loads((tmp_path / "dataset_info.json").read_text())) == {"theirs", "mine.alpaca"}
    result = runner.invoke(app, ["convert", str(qa_csv(tmp_path)), str(tmp_path / "o.parquet"), "--columns",
                                 "prompt=question,response=answer", "--dataset-info"])
    assert result.exit_code == 2 and "--dataset-info" in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_cli_columns_field_and_python_literals(tmp_path):
    data = tmp_path / "wrapped.json"
    data.write_text(json.dumps({"a": [{"q": "x", "r": "y"}], "b": [{"q": "z", "r": "w"}]}, indent=2))
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["convert", str(data), str(out), "--columns", "prompt=q,response=r", "--field", "b"])
    assert result.exit_code == 0, result.output
    assert turns([json.loads(line) for line in out.open()]) == [[("user", "z"), ("assistant", "w")]]
    literal = tmp_path / "lit.jsonl"
    literal.write_text(repr({"instruction": "i", "output": "o"}) + "\n")
    result = runner.invoke(app, ["inspect", str(literal)])
    assert result.exit_code == 2 and "--python-literals" in result.output
    result = runner.invoke(app, ["validate", str(literal), "--python-literals"])
    assert result.exit_code == 0, result.output


def test_dataset_info_entry_reads_tool_calls_back(tmp_path):
    """function_tag names the tool-call spelling, not the assistant's: read through the entry, a function_call
    turn is still a tool call and a gpt turn an assistant turn without a source spelling of its own."""
    call = '{"name": "weather", "arguments": {"city": "Paris"}}'
    rows = [{"conversations": [{"from": "human", "value": "weather in Paris?"},
                               {"from": "function_call", "value": call},
                               {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]}]
    source = tmp_path / "in.json"
    source.write_text(json.dumps(rows))
    out = tmp_path / "out" / "tools.sharegpt.json"
    convert(source, out, dataset_info=True)
    entry = json.loads((out.parent / "dataset_info.json").read_text())["tools.sharegpt"]
    [by_entry], [by_format] = read_records(out, columns=entry), read_records(out)
    assert by_entry["messages"] == by_format["messages"]
    assert by_entry["messages"][1]["tool_calls"] == [{"name": "weather", "arguments": {"city": "Paris"}}]


def test_dataset_info_entry_names_each_column_some_row_holds(tmp_path):
    """The writer collects the rows' fields as it writes: a system prompt or history in one row of many is a column,
    and one no row holds is not."""
    rows = [{"instruction": "a", "input": "", "output": "b"},
            {"instruction": "c", "input": "", "output": "d", "system": "be brief", "history": [["e", "f"]]}]
    for name, part in (("both", rows), ("first", rows[:1])):
        (tmp_path / f"{name}.json").write_text(json.dumps(part))
        convert(tmp_path / f"{name}.json", tmp_path / "out" / f"{name}.alpaca.json", dataset_info=True)
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["both.alpaca"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output",
                                              "history": "history", "system": "system"}
    assert info["first.alpaca"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
