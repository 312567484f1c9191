"""The real, truncated ShareGPT V3 file: counts checked against an independent line-based count."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from oidkit.cli import app


def count_by_lines(path) -> dict:
    """Independent count from the file's pretty-printing (indent 2): a record opens on a line that is
    exactly ``  {`` and closes on ``  }`` / ``  },``; an empty conversation is ``"conversations": []``."""
    complete = empty = offset = last_open = 0
    with open(path, "rb") as f:
        for line in f:
            if line == b"  {\n":
                last_open = offset + 2
            elif line in (b"  },\n", b"  }\n"):
                complete += 1
            elif line.strip() == b'"conversations": [],' or line.strip() == b'"conversations": []':
                empty += 1
            offset += len(line)
    return {"complete": complete, "empty": empty, "last_open": last_open, "size": offset}


@pytest.mark.real
def test_inspect_real_sharegpt_matches_an_independent_count(sharegpt_file):
    expected = count_by_lines(sharegpt_file)
    assert (expected["complete"], expected["empty"]) == (17_671, 126)
    result = CliRunner().invoke(app, ["inspect", str(sharegpt_file), "--salvage", "--json", "--samples", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"][0]["format"] == "sharegpt"
    assert summary["rows"] == expected["complete"] + 1  # the cut tail is a row read, and a reject
    assert summary["rejected"]["empty_conversation"] == expected["empty"]
    assert summary["rejected"]["truncated"] == 1
    assert summary["unreadable_bytes"] == expected["size"] - expected["last_open"]
    rejected = sum(n for r, n in summary["rejected"].items() if r != "truncated")
    assert summary["records"] + rejected + summary["joined_rows"] == 17_671  # joined: chunks rejoined


@pytest.mark.real
def test_real_sharegpt_without_salvage_names_the_cut(sharegpt_file):
    result = CliRunner().invoke(app, ["inspect", str(sharegpt_file)])
    message = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "record 17671 starts at byte 125,506,645" in message and "ends at byte 125,509,632" in message
    assert "--salvage keeps the 17,671 complete records" in message


def original_row(path, offset: int) -> dict:
    """The row at ``offset`` decoded by the standard library alone (independent of our scanner)."""
    decoder, size = json.JSONDecoder(), 1 << 16
    with open(path, "rb") as f:
        while True:
            f.seek(offset)
            try:
                return decoder.raw_decode(f.read(size).decode("utf-8"))[0]
            except (json.JSONDecodeError, UnicodeDecodeError):
                size *= 4


@pytest.mark.real
def test_real_sharegpt_round_trips_losslessly(sharegpt_file, tmp_path):
    from itertools import islice

    from oidkit.io import read_records, write_records

    rows = read_records(sharegpt_file, salvage=True, on_reject=lambda _: None, repairs=())  # rows as they are
    sample = list(islice(rows, 0, None, 37))
    [out] = write_records(sample, tmp_path / "back.sharegpt.json")
    written = json.loads(out.read_text(encoding="utf-8"))
    assert len(written) == len(sample) > 250
    for record, row in zip(sample, written, strict=True):
        original = original_row(sharegpt_file, record["source"]["offset"])
        assert row.keys() == original.keys()
        for field in original:
            assert row[field] == original[field], (record["id"], field)
