"""The ingest commands end to end: convert, inspect, validate, as a user runs them."""

from __future__ import annotations

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


def test_convert_truncated_input_fails_and_leaves_no_output(tmp_path):
    src = tmp_path / "cut.json"
    src.write_text(json.dumps([GOOD, GOOD])[:-20])
    out = tmp_path / "o.parquet"
    result = runner.invoke(app, ["convert", str(src), str(out)])
    assert result.exit_code != 0 and "truncated JSON array" in str(result.exception)
    assert not out.exists() and not (tmp_path / "o.rejects.jsonl").exists()
    salvaged = runner.invoke(app, ["convert", str(src), str(out), "--salvage"])
    assert salvaged.exit_code == 0 and "unreadable bytes" in salvaged.output
    assert len(list(read_records(out))) == 1


def test_convert_strict_stops_at_the_first_problem(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [GOOD, EMPTY])
    result = runner.invoke(app, ["convert", src, str(tmp_path / "o.jsonl"), "--strict"])
    assert result.exit_code != 0 and "empty_conversation" in str(result.exception)


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
