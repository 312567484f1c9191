"""Every reading command on every case of the bad-input corpus (tests/io/badinputs/make_corpus.py).

For each case and command: the exit code; no traceback and no "bug in oidkit" message; a failure names
the file (and the position when there is one) and leaves no output; the input bytes are unchanged; and
written + rejected == rows read, against the row count the corpus builder wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from badinputs.make_corpus import Case, build
from typer.testing import CliRunner

from oidkit.cli import app

EXITS = {  # command -> exit code per kind
    "fatal": dict.fromkeys(["convert", "inspect", "validate", "curate", "report"], 2),
    "truncated": {"convert": 2, "inspect": 2, "validate": 1, "curate": 2, "report": 2, "convert_salvage": 0,
                  "inspect_salvage": 0, "curate_salvage": 0, "report_salvage": 0},
    "rejects": {"convert": 0, "inspect": 0, "validate": 1, "curate": 0, "report": 0},
    "clean": dict.fromkeys(["convert", "inspect", "validate", "curate", "report"], 0),
}
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("badinputs")
    cases = {case.name: case for case in build(root)}
    yield cases
    for case in cases.values():  # let pytest clean up the unreadable folders
        for path in Path(case.target).parent.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755)


def corpus_names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return [case.name for case in build(Path(folder))]


def fingerprint(folder: Path) -> dict[str, str]:
    """Content hash of every file (the link text of links): what "input bytes unchanged" compares."""
    seen = {}
    for path in sorted(folder.rglob("*")) if os.access(folder, os.R_OK) else []:
        if path.is_symlink():
            seen[str(path)] = "-> " + os.readlink(path)
        elif path.is_file() and os.access(path, os.R_OK):
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_file():
            seen[str(path)] = f"{path.stat().st_size} bytes, unreadable"
    return seen


def lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip()) if path.exists() else 0


def run(command: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, command)
    return result.exit_code, result.output


def check_failure(case: Case, output: str) -> None:
    assert "Traceback" not in output and "bug in oidkit" not in output, output
    assert "error:" in output and case.names in output and case.where in output, output


@pytest.mark.parametrize("name", corpus_names())
def test_every_reading_command_on_a_bad_input(corpus, name, tmp_path):
    case = corpus[name]
    expected = {**EXITS[case.kind], **case.exits}
    folder = Path(case.target).parent  # every case lives in its own folder
    before = fingerprint(folder)
    salvage = case.kind == "truncated"
    flag = ["--salvage"] if salvage else []
    rows = case.rows
    outputs: dict[str, str] = {}

    def step(command: str, arguments: list[str]) -> bool:
        """Run one command, check its exit code and failure message; True when it read the data."""
        code, output = run(arguments)
        outputs[command] = output
        assert code == expected[command], f"{command}: exit {code}, expected {expected[command]}\n{output}"
        assert "Traceback" not in output and "Aborted" not in output, output
        if code == 2:
            check_failure(case, output)
        return code in (0, 1)

    # inspect first: for cut compressed data it also gives the row count to check the others against
    for command, extra in (("inspect", []), ("inspect_salvage", ["--salvage"])):
        if command in expected and step(command, ["inspect", case.target, "--json", "--samples", "0", *extra]):
            summary = json.loads(outputs[command][outputs[command].index("{"):])
            rows = summary["rows"] if rows is None else rows
            assert summary["rows"] == rows and summary["records"] + sum(summary["rejected"].values()) == rows

    if step("validate", ["validate", case.target]):
        found = re.search(r"([\d,]+) rows, ([\d,]+) valid, ([\d,]+) problems", outputs["validate"])
        read, valid, problems = (int(n.replace(",", "")) for n in found.groups())
        assert read == rows and valid + problems == rows

    for command, extra in (("convert", []), ("convert_salvage", flag)):
        if command not in expected:
            continue
        out = tmp_path / command / "o.jsonl"
        if step(command, ["convert", case.target, str(out), *extra]):
            assert lines(out) + lines(out.with_name("o.rejects.jsonl")) == rows
        else:
            assert not out.exists(), "a failed convert left an output that could pass for a result"

    for command, extra in (("curate", []), ("curate_salvage", flag)):
        if command not in expected:
            continue
        out = tmp_path / command
        if step(command, ["curate", "--op", "exact_dedup", case.target, str(out), *extra]):
            stats = json.loads((out / "stats.json").read_text())
            kept, rejected = lines(out / "kept.jsonl"), lines(out / "rejects.jsonl")
            assert kept + rejected + lines(out / "ingest_rejects.jsonl") == rows
            assert stats["input"]["rows"] == rows == stats["input"]["rejected_on_read"] + stats["input"]["records"]
            assert f"read {rows:,} rows" in " ".join(outputs[command].split())

    for command, extra in (("report", []), ("report_salvage", flag)):
        if command not in expected:
            continue
        out = tmp_path / command
        if step(command, ["report", case.target, "-o", str(out), *extra]):
            stats = json.loads((out / "stats.json").read_text())
            assert stats["overview"]["records"] + (stats["rejects"] or {"total": 0})["total"] == rows
            assert stats["read"]["rows"] == rows and f"read {rows:,} rows" in " ".join(outputs[command].split())

    assert fingerprint(folder) == before


def test_the_corpus_has_at_least_60_cases_of_every_kind(corpus):
    kinds = [case.kind for case in corpus.values()]
    assert len(kinds) >= 60 and {kinds.count(kind) > 3 for kind in EXITS} == {True}
