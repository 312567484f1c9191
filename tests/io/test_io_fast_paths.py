"""The fast ingest paths give exactly what the slow, general ones give (issue 18)."""

from __future__ import annotations

import errno
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oidkit.io import convert, jsonstream, writers
from oidkit.io.jsonstream import iter_json_array
from oidkit.io.writers import PARQUET_SCHEMA, parquet_table, to_parquet_row, write_records

ROWS = [
    {"id": "a", "conversations": [{"from": "human", "value": 'braces } ] { [ , and "quotes" and \\ backslash'},
                                  {"from": "gpt", "value": "line\n  },\n  {\nnot structure\n]"}]},
    {"t": "日本語 ✓ 中文：你好，世界！", "n": [1, {"x": "]"}, [], {}], "e": "\\\\\"}"},
    {}, [], "a string", 3, None, [1, [2, {"k": "}"}]],
    {"nested": {"deeper": {"deepest": ["},", "],"]}}},
]


def layouts(rows: list) -> dict[str, bytes]:
    """The same rows as json.dump writes them: indented, one per line, compact, and with tabs."""
    return {"indent2": json.dumps(rows, ensure_ascii=False, indent=2).encode(),
            "per_line": ("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n").encode(),
            "compact": json.dumps(rows, ensure_ascii=False).encode(),
            "tabs": json.dumps(rows, indent="\t").encode()}


def scan(data: bytes, chunk_bytes: int) -> list:
    return list(iter_json_array(io.BytesIO(data), chunk_bytes=chunk_bytes))


def tokenizer_only(monkeypatch: pytest.MonkeyPatch, data: bytes, chunk_bytes: int) -> list:
    with monkeypatch.context() as patch:
        patch.setattr(jsonstream, "GUESS_MISSES", -1)  # never guess: every element through the tokenizer
        return scan(data, chunk_bytes)


@pytest.mark.parametrize("layout", ["indent2", "per_line", "compact", "tabs"])
@pytest.mark.parametrize("chunk_bytes", [16, 97, 1 << 20])
def test_layout_guess_gives_the_tokenizers_values_and_positions(monkeypatch, layout, chunk_bytes):
    data = layouts(ROWS)[layout]
    expected = tokenizer_only(monkeypatch, data, chunk_bytes)
    assert [value for value, _ in expected] == ROWS
    assert scan(data, chunk_bytes) == expected


@pytest.mark.parametrize("layout", ["indent2", "per_line"])
def test_truncated_anywhere_gives_the_same_rows_and_tail(monkeypatch, layout):
    data = layouts(ROWS)[layout]
    for cut in range(1, len(data), 5):
        assert scan(data[:cut], 64) == tokenizer_only(monkeypatch, data[:cut], 64), cut


@pytest.mark.parametrize("bad", [b'{"a": 1,}', b'{"a": 1} x', b'{"a": "\xff"}', b'{"a": [1}', b""])
def test_invalid_elements_are_rejected_as_before(monkeypatch, bad):
    data = b'[\n  {"ok": 1},\n  ' + bad + b',\n  {\n    "ok": [2]\n  }\n] trailing'
    rows = scan(data, 1 << 20)
    assert rows == tokenizer_only(monkeypatch, data, 1 << 20)
    assert rows[0][0] == {"ok": 1} and isinstance(rows[1][0], jsonstream.Unreadable)


def test_indented_arrays_take_the_guess(monkeypatch):
    guessed = []

    def counting(buf: bytes, start: int):
        found = whole_element(buf, start)
        guessed.append(found is not None)
        return found

    whole_element = jsonstream._whole_element
    monkeypatch.setattr(jsonstream, "_whole_element", counting)
    scan(layouts([row for row in ROWS if isinstance(row, dict | list)] * 20)["indent2"], 1 << 20)
    assert guessed and all(guessed)


def test_parquet_table_equals_arrow_from_pylist():
    rows = [{"id": "x", "messages": [{"role": "user", "content": "中文 \x00 ✓", "name": None, "source_role": "human",
                                      "tool_calls": '[{"name": "f"}]', "reasoning": None, "extra": None},
                                     {"role": "assistant", "content": None, "name": "n", "source_role": None,
                                      "tool_calls": None, "reasoning": "r", "extra": '{"w": 0}'}],
             "tools": None, "media": '{"images": ["a.png"]}', "source": "{}", "meta": "{}"},
            {"id": "y", "messages": [], "tools": "[]", "media": None, "source": "{}", "meta": '{"k": 1}'}]
    expected = pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA)
    assert parquet_table(rows).equals(expected)
    assert parquet_table(rows).to_pylist() == rows


def chat_records(n: int) -> list[dict]:
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"问题 {i} " * (i % 7)},
                                         {"role": "assistant", "content": f"answer {i}"}],
             "source": {"index": i}, "meta": {"n": i}} for i in range(n)]


def test_parquet_batches_written_in_the_background_keep_their_order(monkeypatch, tmp_path):
    monkeypatch.setattr(writers, "PARQUET_BATCH_ROWS", 3)
    records = chat_records(20)
    write_records(records, tmp_path / "out.parquet")
    written = pq.ParquetFile(tmp_path / "out.parquet")
    assert written.metadata.num_row_groups == 7  # one row group per batch, 3 rows each and 2 at the end
    expected = pa.Table.from_pylist([to_parquet_row(r) for r in records], schema=PARQUET_SCHEMA)
    assert written.read().equals(expected)


@pytest.mark.parametrize("failing", [3, 10])  # a batch in the middle, the last one (written by close)
def test_a_failed_background_write_stops_the_run_and_leaves_no_output(monkeypatch, tmp_path, failing):
    monkeypatch.setattr(writers, "PARQUET_BATCH_ROWS", 2)
    write_table, calls = pq.ParquetWriter.write_table, []

    def disk_full(self, table, *args, **kwargs):
        calls.append(len(table))
        if len(calls) == failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_table(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_records(chat_records(20), tmp_path / "out.parquet")
    assert len(calls) <= failing + 1  # stopped at the next batch at the latest
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file is left


@pytest.mark.real
def test_real_sharegpt_converts_to_the_same_parquet_either_way(monkeypatch, sharegpt_file, tmp_path):
    fast = convert(sharegpt_file, tmp_path / "fast.parquet", salvage=True)
    with monkeypatch.context() as patch:
        patch.setattr(jsonstream, "GUESS_MISSES", -1)
        slow = convert(sharegpt_file, tmp_path / "slow.parquet", salvage=True)
    assert {k: v for k, v in fast.items() if k not in ("seconds", "outputs", "rejects_file")} == \
        {k: v for k, v in slow.items() if k not in ("seconds", "outputs", "rejects_file")}
    assert pq.read_table(tmp_path / "fast.parquet").equals(pq.read_table(tmp_path / "slow.parquet"))
    assert (tmp_path / "fast.rejects.jsonl").read_bytes() == (tmp_path / "slow.rejects.jsonl").read_bytes()
