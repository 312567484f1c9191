"""The ingest commands end to end: convert, inspect, validate, as a user runs them."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.io import read_jsonl, read_records

runner = CliRunner()
GOOD = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
EMPTY = {"conversations": []}
NARRATED = {"conversations": [{"from": "narrator", "value": "s"}, {"from": "human", "value": "q"},
                              {"from": "gpt", "value": "a"}]}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_convert_writes_output_rejects_and_summary(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, EMPTY, GOOD, NARRATED])
    result = runner.invoke(app, ["convert", src, str(tmp_path / "out" / "data.parquet")])
    assert result.exit_code == 0, result.output
    assert "wrote 2 records" in result.output and "empty_conversation" in result.output
    assert len(list(read_records(tmp_path / "out" / "data.parquet"))) == 2
    rejects = list(read_jsonl(tmp_path / "out" / "data.rejects.jsonl"))
    assert [r["reason"] for r in rejects] == ["empty_conversation", "unknown_role"]
    assert rejects[0]["record"] == EMPTY and rejects[0]["source"]["line"] == 2


def test_convert_role_map_option_and_output_format(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [NARRATED])
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["convert", src, str(out), "--to", "sharegpt", "--role-map", "narrator=system"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == [NARRATED]


def test_convert_bad_role_map_is_a_message_not_a_traceback(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    result = runner.invoke(app, ["convert", src, str(tmp_path / "o.jsonl"), "--role-map", "x=wizard"])
    assert result.exit_code == 2 and "role map targets must be one of" in result.output


@pytest.mark.parametrize("name", ["cut.json", "cut.json.gz"])  # plain: fails fast from the tail; gz: at the end
def test_convert_truncated_input_fails_and_leaves_no_output(tmp_path, name):
    src = tmp_path / name
    text = json.dumps([GOOD, GOOD])[:-20].encode()
    src.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    out = tmp_path / "o.parquet"
    result = runner.invoke(app, ["convert", str(src), str(out)])
    assert result.exit_code == 2 and "truncated JSON array" in result.output
    assert not out.exists() and not (tmp_path / "o.rejects.jsonl").exists()
    salvaged = runner.invoke(app, ["convert", str(src), str(out), "--salvage"])
    assert salvaged.exit_code == 0 and "unreadable bytes" in salvaged.output
    assert len(list(read_records(out))) == 1


def test_convert_strict_stops_at_the_first_problem(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, EMPTY])
    result = runner.invoke(app, ["convert", src, str(tmp_path / "o.jsonl"), "--strict"])
    assert result.exit_code == 2 and "empty_conversation" in result.output
    assert not (tmp_path / "o.jsonl").exists()  # the first record was written, then removed with the failure


def test_inspect_json_counts(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, EMPTY, GOOD])
    result = runner.invoke(app, ["inspect", src, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["records"], summary["turns"]) == (3, 2, 4)
    assert summary["rejected"] == {"empty_conversation": 1}
    assert summary["roles"] == {"user": 2, "assistant": 2}
    assert summary["files"][0]["format"] == "sharegpt"


def test_inspect_tables_show_counts_and_examples(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, EMPTY])
    result = runner.invoke(app, ["inspect", src])
    assert result.exit_code == 0, result.output
    assert "valid records" in result.output and "empty_conversation" in result.output and '"role"' in result.output


def test_validate_lists_problems_and_exits_non_zero(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, EMPTY, GOOD, NARRATED])
    result = runner.invoke(app, ["validate", src])
    assert result.exit_code == 1
    assert "empty_conversation" in result.stdout and "line 2" in result.stdout
    assert "unknown_role" in result.stdout and "line 4" in result.stdout
    clean = runner.invoke(app, ["validate", write_jsonl(tmp_path / "ok.jsonl", [GOOD])])
    assert clean.exit_code == 0


@pytest.mark.parametrize("command", ["convert", "inspect", "validate"])
def test_help_has_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "oid " + command in result.output


def test_convert_refuses_to_overwrite_its_input(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    result = runner.invoke(app, ["convert", src, src])
    assert result.exit_code == 2 and "also an input" in result.output
    assert json.loads((tmp_path / "in.jsonl").read_text()) == GOOD


def chat(user: str, assistant: str) -> dict:
    return {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]}


def test_inspect_counts_languages_by_the_one_rule(tmp_path):
    # The answer's language wins (oidkit.core.language), as curate's language step and the report say. This
    # answer alone reads as Wu Chinese in py3langid: plain written Chinese, counted as zh.
    wuu = chat("请用三句话介绍一下长城的历史。", "长城始建于春秋战国时期，秦朝统一后连接成万里长城，明朝又大规模重修。")
    zh = chat("请用三句话介绍一下长城的历史。",
              "长城是中国古代的军事防御工程，始建于春秋战国时期，秦朝统一后连接成万里长城。")
    en = chat("Please describe the history of the Great Wall.", "It was begun in the Warring States period.")
    result = runner.invoke(app, ["inspect", write_jsonl(tmp_path / "in.jsonl", [zh, en, zh, wuu]), "--json"])
    assert json.loads(result.stdout)["languages"] == {"zh": 3, "en": 1}
def test_convert_allow_keeps_non_alternating_conversations(tmp_path):
    starts_with_answer = {"conversations": [{"from": "gpt", "value": "part 2"}, {"from": "human", "value": "more"},
                                            {"from": "gpt", "value": "ok"}]}
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, starts_with_answer])
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["convert", src, str(out), "--allow", "non_alternating", "--no-repair"])
    assert result.exit_code == 0 and "wrote 2 records" in result.output
