"""The command line's last line of defence: any exception is one message and exit 2, --debug shows it."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from oidkit.cli import app

runner = CliRunner()
ROW = {"instruction": "What is 2 + 2?", "output": "4"}


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    return path


def one_line(output: str) -> str:
    return " ".join(output.split())


def test_a_full_disk_names_the_output_and_says_what_to_do(data):
    result = runner.invoke(app, ["convert", str(data), "/dev/full", "--to", "jsonl"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "/dev/full: No space left on device" in result.output and "the disk is full" in result.output


def test_an_output_that_cannot_be_created_is_a_message(data, tmp_path):
    result = runner.invoke(app, ["convert", str(data), str(data / "o.jsonl")])  # a folder inside a file
    assert result.exit_code == 2 and f"{data}: File exists" in result.output and "Traceback" not in result.output


def test_a_curate_output_folder_that_is_the_input_file_is_a_message(data):
    before = data.read_bytes()
    result = runner.invoke(app, ["curate", "--op", "exact_dedup", str(data), str(data)])
    assert result.exit_code == 2 and str(data) in result.output and "Traceback" not in result.output
    assert "remove" not in result.output  # never advise deleting what may be the user's input
    assert data.read_bytes() == before


def test_an_unexpected_exception_is_reported_as_our_bug_and_debug_shows_the_traceback(data, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr("oidkit.io.inspect", broken)
    result = runner.invoke(app, ["inspect", str(data)])
    assert result.exit_code == 2 and "unexpected KeyError" in result.output and "--debug" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for debugging in (["--debug", "inspect", str(data)], ["inspect", str(data)]):
        shown = runner.invoke(app, debugging, env={"OIDKIT_DEBUG": "1" if debugging[0] != "--debug" else ""})
        assert isinstance(shown.exception, KeyError)  # the traceback goes through


def test_ctrl_c_exits_130_and_an_eof_is_not_a_bare_aborted(data, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("oidkit.io.inspect", interrupted)
    result = runner.invoke(app, ["inspect", str(data)])
    assert result.exit_code == 130 and "interrupted" in result.output

    def ended(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr("oidkit.io.inspect", ended)
    result = runner.invoke(app, ["inspect", str(data)])
    assert result.exit_code == 2 and "Aborted" not in result.output and "the input ended early" in result.output


def test_a_missing_rubric_is_named_before_any_model_loads(data, tmp_path):
    started = time.perf_counter()
    result = runner.invoke(app, ["annotate", str(data), "--model", "no-such-model", "--rubric",
                                 str(tmp_path / "rubric.txt"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"{tmp_path / 'rubric.txt'}" in result.output
    assert "cannot read the --rubric file" in result.output and time.perf_counter() - started < 5


def test_an_unknown_model_fails_at_once_pointing_at_oid_models_list(tmp_path, monkeypatch):
    monkeypatch.setenv("OIDKIT_CACHE", str(tmp_path))
    started = time.perf_counter()
    result = runner.invoke(app, ["viz", "tokens", "smollm-135m", "hello", "-o", str(tmp_path / "viz")])
    assert result.exit_code == 2 and "unknown model 'smollm-135m'" in one_line(result.output)
    assert "oid models list" in result.output and time.perf_counter() - started < 30


def test_the_salvage_hint_names_only_options_that_exist(tmp_path):
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps([ROW, ROW])[:-10])
    hint = runner.invoke(app, ["curate", "--op", "exact_dedup", str(cut), str(tmp_path / "out")]).output
    assert "--salvage" in hint
    salvaged = runner.invoke(app, ["curate", "--op", "exact_dedup", str(cut), str(tmp_path / "out"), "--salvage"])
    assert salvaged.exit_code == 0, salvaged.output
    assert "read 2 rows: 1 rejected on read" in one_line(salvaged.output) and "kept 1 of 1" in salvaged.output


@pytest.mark.parametrize(("error", "expected"), [
    (PermissionError(13, "Permission denied", "/data/x.jsonl"), "/data/x.jsonl: Permission denied\nhint: check its"),
    (OSError(30, "Read-only file system", "/ro/out"), "/ro/out: Read-only file system\nhint: the file system is"),
    (OSError(40, "Too many levels of symbolic links", "a"), "a: Too many levels of symbolic links\nhint: a symbolic"),
    (UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid start byte"), "not valid utf-8 at byte 2"),
    (__import__("zlib").error("invalid distance too far back"), "compressed data is cut or corrupt"),
    (OSError("tokenizer file damaged"), "input/output error: tokenizer file damaged"),
    (ValueError("x"), "unexpected ValueError: x\nhint: this is a bug in oidkit"),
])
def test_describe_exception_names_the_file_and_a_fix(error, expected):
    from oidkit.errors import describe_exception

    assert expected in describe_exception(error)


def test_a_value_outside_an_options_choices_is_a_usage_error_not_our_bug(data):
    for command in (["eval", str(data), "--model", "m", "--tokens", "bad"], ["serve", "m", "--quantize", "bad"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "Invalid value for '--" in result.output, result.output
        assert "bug in oidkit" not in result.output
