"""Reading every container (JSON, JSONL, CSV, Parquet, save_to_disk, gz/zst, folders, globs) and bad input."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from oidkit.errors import InputError
from oidkit.io import ReadStats, read_records, write_records
from oidkit.io.jsonstream import iter_json_array

ROWS = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(5)]


def jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def contents(records) -> list[str]:
    return [m["content"] for r in records for m in r["messages"]]


EXPECTED = [text for i in range(5) for text in (f"q{i}", f"a{i}")]


@pytest.mark.parametrize("writer", ["json", "jsonl", "jsonl.gz", "jsonl.zst", "csv", "parquet"])
def test_every_container_reads_the_same_records(tmp_path, writer):
    path = tmp_path / "data.bin"  # one name for all: detection must come from content
    if writer == "json":
        path.write_text(json.dumps(ROWS, indent=2))
    elif writer == "jsonl":
        path.write_bytes(jsonl_bytes(ROWS))
    elif writer == "jsonl.gz":
        path.write_bytes(gzip.compress(jsonl_bytes(ROWS)))
    elif writer == "jsonl.zst":
        path.write_bytes(zstandard.ZstdCompressor().compress(jsonl_bytes(ROWS)))
    elif writer == "csv":
        path.write_text("instruction,input,output\n" + "".join(f"q{i},,a{i}\n" for i in range(5)))
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    stats = ReadStats()
    records = list(read_records(path, stats=stats))
    assert contents(records) == EXPECTED
    assert stats.files[0]["format"] == "alpaca"
    assert [r["source"]["index"] for r in records] == list(range(5))


def test_hf_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "hf"))
    assert contents(read_records(tmp_path / "hf")) == EXPECTED
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:3]),
                                   "test": datasets.Dataset.from_list(ROWS[3:])})
    splits.save_to_disk(str(tmp_path / "hf_dict"))
    records = list(read_records(tmp_path / "hf_dict"))
    assert contents(records) == EXPECTED
    assert [r["source"]["split"] for r in records] == ["train"] * 3 + ["test"] * 2
    assert records[0]["source"]["file"].endswith(".arrow")


def test_folder_and_glob_of_shards_read_in_order(tmp_path):
    (tmp_path / "shards").mkdir()
    for n in range(3):
        (tmp_path / "shards" / f"part-{n}.jsonl").write_bytes(jsonl_bytes([ROWS[n]]))
    (tmp_path / "shards" / "part.rejects.jsonl").write_text('{"not": "data"}\n')
    assert contents(read_records(tmp_path / "shards")) == EXPECTED[:6]
    assert contents(read_records(str(tmp_path / "shards" / "part-[12].jsonl"))) == EXPECTED[2:6]


def test_positions_name_line_and_byte_offset(tmp_path):
    path = tmp_path / "a.json"
    text = json.dumps(ROWS, indent=2)
    path.write_text(text)
    records = list(read_records(path))
    for i, record in enumerate(records):
        offset = record["source"]["offset"]
        assert json.loads(text[offset:].split("\n  }", 1)[0] + "}") == ROWS[i]
        assert record["source"]["line"] == text[:offset].count("\n") + 1


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_json_array_scanner_handles_elements_split_across_windows(chunk):
    rows = [{"t": 'braces } ] { [ and "quotes" and \\ backslash', "n": [1, {"x": "]"}]}, "a string", 3, None,
            {"unicode": "日本語 ✓"}, []]
    data = json.dumps(rows, ensure_ascii=False).encode()
    values = [value for value, _ in iter_json_array(io.BytesIO(data), chunk_bytes=chunk)]
    assert values == rows


def test_json_array_is_streamed_not_loaded_whole():
    data = json.dumps([{"i": i, "pad": "x" * 100} for i in range(1000)]).encode()
    stream = io.BytesIO(data)
    first, _ = next(iter_json_array(stream, chunk_bytes=1024))
    assert first["i"] == 0 and stream.tell() < len(data) // 10


def test_canonical_jsonl_and_parquet_read_back_unchanged(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "q"},
                               {"from": "function_call", "value": '{"name": "f", "arguments": {}}'},
                               {"from": "observation", "value": "r"}, {"from": "chatgpt", "value": "a"}],
             "tools": '[{"name": "f"}]', "images": ["i.png"], "lang": "en"}]
    (tmp_path / "in.jsonl").write_bytes(jsonl_bytes(rows))
    records = list(read_records(tmp_path / "in.jsonl"))
    for name in ("canon.jsonl", "canon.parquet"):
        [out] = write_records(records, tmp_path / name)
        again = list(read_records(out))
        assert again == records, name


def test_shard_size_splits_output_and_the_folder_reads_back(tmp_path):
    records = list(read_records(_jsonl(tmp_path, ROWS)))
    paths = write_records(records, tmp_path / "out" / "data.parquet", shard_size=2)
    assert [p.name for p in paths] == ["data-00000.parquet", "data-00001.parquet", "data-00002.parquet"]
    assert contents(read_records(tmp_path / "out")) == EXPECTED


def _jsonl(tmp_path, rows, name="in.jsonl"):
    path = tmp_path / name
    path.write_bytes(jsonl_bytes(rows))
    return path


def truncated_array(tmp_path, rows, cut_inside: int):
    """A JSON array cut ``cut_inside`` bytes into the last element; returns (path, start of last, size)."""
    text = json.dumps(rows, indent=2).encode()
    last_start = text.rindex(b"{")
    data = text[: last_start + cut_inside]
    path = tmp_path / "cut.json"
    path.write_bytes(data)
    return path, last_start, len(data)


def test_truncated_array_fails_with_position_and_hint(tmp_path):
    path, last_start, size = truncated_array(tmp_path, ROWS, cut_inside=10)
    with pytest.raises(InputError) as error:
        list(read_records(path))
    message = str(error.value)
    assert str(path) in message and f"record 4 starts at byte {last_start:,}" in message
    assert f"file ends at byte {size:,}" in message and "--salvage keeps the 4 complete records" in message
    assert error.value.index == 4 and error.value.offset == last_start


def test_salvage_keeps_complete_records_and_counts_unreadable_bytes(tmp_path):
    path, last_start, size = truncated_array(tmp_path, ROWS, cut_inside=10)
    stats, rejects = ReadStats(), []
    records = list(read_records(path, salvage=True, stats=stats, on_reject=rejects.append))
    assert contents(records) == EXPECTED[:8]
    assert stats.unreadable_bytes == size - last_start
    assert [r["reason"] for r in rejects] == ["truncated"] and rejects[0]["record"].startswith("{")


BAD_ROWS = [
    ("[1, 2]", "not_an_object"),
    ('{"conversations": []}', "empty_conversation"),
    ('{"conversations": [{"from": "alien", "value": "x"}, {"from": "gpt", "value": "y"}]}', "unknown_role"),
    ('{"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}, '
     '{"from": "gpt", "value": "z"}]}', "non_alternating"),
    ('{"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "  "}]}', "empty_assistant_turn"),
    ('{"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "y"}]}', "bad_type"),
    ('{"conversations": "not a list"}', "bad_type"),
    ('{"conversations": [{"from": "human", "value": "caf\xe9"}]}', "invalid_utf8"),
    ('{"conversations": [{"from": "human", "value": "x"}, ', "invalid_json"),
    ('{"id": "no-turns-key"}', "missing_field"),
]


def test_invalid_rows_are_quarantined_with_reason_and_position(tmp_path):
    good = '{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}'
    lines = [good] + [row for row, _ in BAD_ROWS]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(line.encode("latin-1") if "\xe9" in line else line.encode() for line in lines))
    rejects, stats = [], ReadStats()
    records = list(read_records(path, format="sharegpt", on_reject=rejects.append, stats=stats, repairs=()))
    assert len(records) == 1
    assert [r["reason"] for r in rejects] == [reason for _, reason in BAD_ROWS]
    assert [r["source"]["line"] for r in rejects] == list(range(2, len(lines) + 1))
    assert all(r["stage"] == "ingest" and r["operator"] == "read" and r["detail"] for r in rejects)
    assert rejects[0]["record"] == [1, 2] and "caf\\xe9" in rejects[7]["record"]
    assert sum(stats.rejected.values()) == len(BAD_ROWS)


def test_strict_turns_the_first_problem_into_an_error(tmp_path):
    path = _jsonl(tmp_path, [ROWS[0], {"instruction": "q", "input": "", "output": ""}])
    with pytest.raises(InputError, match="empty_assistant_turn") as error:
        list(read_records(path, strict=True))
    assert error.value.line == 2


def test_invalid_utf8_inside_a_json_array_is_a_reject_not_a_crash(tmp_path):
    rows = json.dumps(ROWS[:2]).encode().replace(b'"q1"', b'"q\xff1"')
    path = tmp_path / "bad.json"
    path.write_bytes(rows)
    rejects = []
    records = list(read_records(path, on_reject=rejects.append))
    assert contents(records) == EXPECTED[:2] and [r["reason"] for r in rejects] == ["invalid_utf8"]


def test_invalid_utf8_csv_cell_is_a_reject(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"instruction,input,output\nq0,,a0\nq\xff,,a1\n")
    rejects = []
    assert contents(read_records(path, on_reject=rejects.append)) == EXPECTED[:2]
    assert rejects[0]["reason"] == "invalid_utf8" and rejects[0]["source"]["line"] == 3


def test_unknown_format_names_the_keys_and_suggests_format(tmp_path):
    path = _jsonl(tmp_path, [{"question": "q", "answer": "a"}])
    with pytest.raises(InputError, match=r"keys \['answer', 'question'\]") as error:
        list(read_records(path))
    assert "--format" in str(error.value)



def test_empty_shards_are_skipped_and_an_ambiguous_json_document_is_explained(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "a.jsonl").write_text("")
    _jsonl(tmp_path / "shards", ROWS[:1], name="b.jsonl")
    assert contents(read_records(tmp_path / "shards")) == EXPECTED[:2]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"train": ROWS, "test": ROWS}, indent=2))
    with pytest.raises(InputError, match="--field KEY"):
        list(read_records(wrapped))


def test_forcing_canonical_on_rows_without_messages_rejects_them(tmp_path):
    rejects = []
    assert list(read_records(_jsonl(tmp_path, ROWS[:1]), format="canonical", on_reject=rejects.append)) == []
    assert rejects[0]["reason"] == "missing_field"


@pytest.mark.parametrize("name", ["out.jsonl.zst", "out.sharegpt.json.gz", "out.openai.jsonl.gz"])
def test_compressed_outputs_read_back(tmp_path, name):
    records = list(read_records(_jsonl(tmp_path, ROWS)))
    [path] = write_records(records, tmp_path / name)
    assert path.read_bytes()[:2] in (b"\x1f\x8b", b"\x28\xb5")
    assert contents(read_records(path)) == EXPECTED


def test_data_after_the_array_is_reported_and_a_bom_is_not_data(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(jsonl_bytes([["a", "b"], ROWS[0]]))
    rejects = []
    list(read_records(path, format="alpaca", on_reject=rejects.append))
    assert [r["reason"] for r in rejects] == ["not_an_object", "not_an_object", "invalid_json"]
    assert "after the closing bracket" in rejects[-1]["detail"]
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + jsonl_bytes(ROWS))
    assert contents(read_records(bom)) == EXPECTED


def test_progress_reports_growing_byte_counts_up_to_the_file_size(tmp_path):
    path = _jsonl(tmp_path, [ROWS[i % 5] for i in range(3000)])
    seen = []
    assert sum(1 for _ in read_records(path, on_progress=seen.append)) == 3000
    assert len(seen) > 2 and seen == sorted(seen) and seen[-1] == path.stat().st_size


def test_allow_accepts_named_conversation_problems_only(tmp_path):
    ask, empty_answer = {"role": "user", "content": "Name a color."}, {"role": "assistant", "content": ""}
    instruction_only = [{"messages": [ask]}, {"messages": [ask, empty_answer]}]
    path = _jsonl(tmp_path, instruction_only)
    assert list(read_records(path, on_reject=lambda _: None)) == []
    allowed = list(read_records(path, allow={"no_assistant_turn", "empty_assistant_turn"}))
    assert [len(r["messages"]) for r in allowed] == [1, 2]
    with pytest.raises(InputError, match="only conversation problems"):
        list(read_records(path, allow={"invalid_json"}))


def test_read_jsonl_names_the_file_and_line_of_a_broken_row(tmp_path):
    from oidkit.io import read_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"b": tru\n{"c": 3}\n')
    rows = read_jsonl(path)
    assert next(rows) == {"a": 1}
    with pytest.raises(InputError, match=r"rows\.jsonl: not valid JSON \(.*column 7\) \(at line 3\)"):
        next(rows)
