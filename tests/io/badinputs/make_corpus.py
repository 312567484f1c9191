"""Build the bad-input corpus: one folder per case, and what every reading command must do with it.

Run it alone to look at the files: ``python tests/io/badinputs/make_corpus.py /tmp/corpus`` (it prints the
cases). ``tests/io/test_bad_inputs.py`` builds it into a temporary folder and runs convert, inspect,
validate, curate and report on every case.

A case's ``kind`` says what the commands do:

- ``fatal``: nothing can be read; every command exits 2 with one message naming ``names`` (and ``where``);
- ``truncated``: the data is cut; exit 2 naming the cut, except validate (it reports it, exit 1); with
  ``--salvage`` the complete rows are kept and the tail is one reject;
- ``rejects``: bad rows are quarantined: exit 0, validate exits 1;
- ``clean``: every row is a record, every command exits 0.

``rows`` is the number of rows the case holds (a cut tail counts as one), counted here while writing,
so the tests check ``written + rejected == rows`` against it, not against our own reader.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard


@dataclass
class Case:
    name: str
    kind: str  # fatal | truncated | rejects | clean
    target: str  # the argument given to the commands (a file, folder or glob)
    rows: int | None = None  # rows the input holds, a cut tail counted as one (None: nothing readable)
    names: str = ""  # text the error must contain: the file (default: target)
    where: str = ""  # text naming the position in the error, when there is one
    exits: dict[str, int] = field(default_factory=dict)  # per-command exit codes that differ from the kind's


def alpaca(i: int) -> dict:
    return {"instruction": f"Question number {i}: what is {i} + {i}?", "input": "", "output": f"It is {2 * i}."}


def sharegpt(i: int) -> dict:
    return {"id": f"c{i}", "conversations": [{"from": "human", "value": f"Say {i}."},
                                             {"from": "gpt", "value": f"{i}."}]}


def jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n" for r in rows)


def decompress_cut(new_decoder, data: bytes) -> bytes:
    """What the standard decoders give for cut data, every member or frame."""
    out = b""
    while data:
        decoder = new_decoder()
        out += decoder.decompress(data)
        data = decoder.unused_data if decoder.eof else b""
    return out


def rows_before_cut(new_decoder, data: bytes, closing: bytes) -> int:
    """Rows a reader must see in cut compressed data: the complete rows (``closing`` ends each) and the tail."""
    return decompress_cut(new_decoder, data).count(closing) + 1


def gunzip():
    return zlib.decompressobj(wbits=31)


GOOD = [alpaca(i) for i in range(6)]
ALL_EXITS_2 = {"validate": 2}
NOISE = random.Random(14).randbytes(300)  # fixed "random" bytes: every run builds the same corpus


def build(root: Path) -> list[Case]:
    """Write every case under ``root/<name>/`` and return the cases."""
    cases: list[Case] = []

    def add(name: str, kind: str, files: dict[str, bytes], rows: int | None = None, *, target: str | None = None,
            **extra) -> None:
        folder = root / name
        folder.mkdir(parents=True)
        for relative, data in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        path = str(folder / (target if target is not None else next(iter(files))))
        cases.append(Case(name, kind, path, rows, **{"names": path, **extra}))

    # --- rows with problems: quarantined, the run goes on -------------------------------------------
    add("jsonl_invalid_json", "rejects", {"d.jsonl": jsonl([*GOOD[:3], b'{"instruction": "x", "output": ', *GOOD[3:]])},
        7)
    add("jsonl_invalid_utf8", "rejects", {"d.jsonl": jsonl([*GOOD[:2], b'{"instruction": "\xff\xfe", "output": "a"}',
                                                            *GOOD[2:]])}, 7)
    add("jsonl_scalar_row", "rejects", {"d.jsonl": jsonl([*GOOD, 42])}, 7)
    add("jsonl_array_row", "rejects", {"d.jsonl": jsonl([*GOOD, [1, 2]])}, 7)
    add("jsonl_null_row", "rejects", {"d.jsonl": jsonl([*GOOD, None])}, 7)
    add("jsonl_missing_output", "rejects", {"d.jsonl": jsonl([*GOOD, {"instruction": "no answer field", "x": 1}])}, 7)
    add("jsonl_empty_output", "rejects", {"d.jsonl": jsonl([*GOOD, {"instruction": "q", "output": ""}])}, 7)
    add("jsonl_output_is_number", "rejects", {"d.jsonl": jsonl([*GOOD, {"instruction": "q", "output": 5}])}, 7)
    add("jsonl_output_is_list", "rejects", {"d.jsonl": jsonl([*GOOD, {"instruction": "q", "output": ["a"]}])}, 7)
    add("jsonl_instruction_null", "rejects", {"d.jsonl": jsonl([*GOOD, {"instruction": None, "output": "a"}])}, 7)
    add("jsonl_bom_and_bad_line", "rejects", {"d.jsonl": b"\xef\xbb\xbf" + jsonl([*GOOD, b"not json"])}, 7)
    add("jsonl_crlf_and_bad_line", "rejects",
        {"d.jsonl": jsonl([*GOOD, b"{oops}"]).replace(b"\n", b"\r\n")}, 7)
    add("jsonl_blank_lines_and_bad_line", "rejects", {"d.jsonl": b"\n\n" + jsonl([*GOOD, b"{"]) + b"\n\n"}, 7)
    add("jsonl_nul_inside_line", "rejects", {"d.jsonl": jsonl([*GOOD, b'{"instruction": "a\x00b", "output": 1}'])}, 7)
    add("jsonl_gz_bad_line", "rejects", {"d.jsonl.gz": gzip.compress(jsonl([*GOOD, b"{bad"]))}, 7)
    add("jsonl_zst_bad_line", "rejects",
        {"d.jsonl.zst": zstandard.ZstdCompressor().compress(jsonl([*GOOD, b"{bad"]))}, 7)
    chats = [sharegpt(i) for i in range(5)]
    add("sharegpt_empty_conversation", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": []}])}, 6)
    add("sharegpt_unknown_role", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "wizard", "value": "hi"}, {"from": "gpt", "value": "yo"}]}])}, 6)
    add("sharegpt_no_assistant", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "human", "value": "hi"}]}])}, 6)
    add("sharegpt_no_user", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "gpt", "value": "hi"}]}])}, 6)
    # two user turns in a row are joined by the default merge_consecutive repair: read, not rejected
    add("sharegpt_consecutive_users_repaired", "clean", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "human", "value": "a"}, {"from": "human", "value": "b"}, {"from": "gpt", "value": "c"}]}])}, 6)
    # an assistant-only chunk cannot be repaired: rejected
    add("sharegpt_assistant_only_chunk", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "gpt", "value": "a"}, {"from": "gpt", "value": "b"}]}])}, 6)
    add("sharegpt_empty_answer", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "human", "value": "a"}, {"from": "gpt", "value": ""}]}])}, 6)
    add("sharegpt_system_late", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": [
        {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "system", "value": "c"}]}])}, 6)
    add("sharegpt_turns_not_a_list", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": "hello"}])}, 6)
    add("sharegpt_turn_not_an_object", "rejects", {"d.jsonl": jsonl([*chats, {"conversations": ["hello"]}])}, 6)
    add("openai_role_missing", "rejects", {"d.jsonl": jsonl([
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]} for _ in range(4)]
        + [{"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]}])}, 5)
    add("openai_content_number", "rejects", {"d.jsonl": jsonl([
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]} for _ in range(4)]
        + [{"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "b"}]}])}, 5)
    add("array_invalid_element", "rejects",
        {"d.json": b"[" + b",".join([json.dumps(r).encode() for r in GOOD] + [b"{\"a\": tru}"]) + b"]"}, 7)
    add("array_empty_element", "rejects",
        {"d.json": b"[" + b",".join(json.dumps(r).encode() for r in GOOD[:3]) + b",," +
         b",".join(json.dumps(r).encode() for r in GOOD[3:]) + b"]"}, 7)
    add("array_data_after_close", "rejects", {"d.json": json.dumps(GOOD).encode() + b"\n[1, 2]\n"}, 7)
    add("array_invalid_utf8", "rejects",
        {"d.json": b"[" + b",".join([json.dumps(r).encode() for r in GOOD]
                                    + [b'{"instruction": "\xc3", "output": "a"}']) + b"]"}, 7)
    header = b"instruction,input,output\n"
    csv_rows = b"".join(f"q{i},,a{i}\n".encode() for i in range(5))
    add("csv_invalid_utf8_cell", "rejects", {"d.csv": header + csv_rows + b"q\xff,,a\n"}, 6)
    add("csv_empty_output_cell", "rejects", {"d.csv": header + csv_rows + b"q9,,\n"}, 6)
    table = pa.Table.from_pylist([*[sharegpt(i) for i in range(4)], {"id": "e", "conversations": []}])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    parquet = sink.getvalue().to_pybytes()
    add("parquet_bad_row", "rejects", {"d.parquet": parquet}, 5)
    add("folder_with_one_bad_shard", "rejects", {"shards/a.jsonl": jsonl(GOOD[:3]), "shards/b.jsonl": jsonl(
        [*GOOD[3:], b"{bad"]), "shards/old.rejects.jsonl": jsonl([{"reason": "x"}])}, 7, target="shards")

    # --- clean, in encodings and containers that used to fail ---------------------------------------
    text = jsonl(GOOD).decode()
    add("utf16le_bom_jsonl", "clean", {"d.jsonl": text.encode("utf-16")}, 6)
    add("utf16be_bom_json", "clean", {"d.json": b"\xfe\xff" + json.dumps(GOOD, ensure_ascii=False).encode("utf-16-be")},
        6)
    add("utf32_bom_jsonl", "clean", {"d.jsonl": text.encode("utf-32")}, 6)
    add("utf8_bom_json", "clean", {"d.json": b"\xef\xbb\xbf" + json.dumps(GOOD).encode()}, 6)
    add("utf16_bom_gz", "clean", {"d.jsonl.gz": gzip.compress(text.encode("utf-16"))}, 6)
    add("gzip_multi_member", "clean", {"d.jsonl.gz": gzip.compress(jsonl(GOOD[:3])) + gzip.compress(jsonl(GOOD[3:]))},
        6)
    no_results = {"report": 2}  # nothing to report on is an error for the report only
    add("empty_file", "clean", {"d.jsonl": b""}, 0, exits=no_results)
    add("whitespace_only_file", "clean", {"d.jsonl": b"\n  \n\t\n"}, 0, exits=no_results)
    add("empty_array", "clean", {"d.json": b"[]"}, 0, exits=no_results)

    # --- cut or corrupt: an error, or the complete rows with --salvage -----------------------------
    array = json.dumps(GOOD, indent=2).encode()
    last = array.rindex(b"{")
    add("array_cut_mid_record", "truncated", {"d.json": array[:last + 15]}, 6, where="record 5")
    add("array_cut_after_comma", "truncated", {"d.json": array[:last]}, 6, where="record 5")
    # the last record is complete but nothing follows it: without "," or "]" it counts as the cut tail
    add("array_never_closed", "truncated", {"d.json": array[:array.rindex(b"]")]}, 6, where="record 5")
    add("array_cut_utf16", "truncated", {"d.json": b"\xff\xfe" + array[:last + 15].decode().encode("utf-16-le")}, 6,
        where="record 5")
    array = json.dumps([alpaca(i) for i in range(300)], indent=2).encode()
    cut = gzip.compress(array)[:len(gzip.compress(array)) * 2 // 3]
    add("gz_array_cut", "truncated", {"d.json.gz": cut}, rows_before_cut(gunzip, cut, b"\n  }"))
    lines = jsonl([alpaca(i) for i in range(1000)])
    compressed = gzip.compress(lines)
    cut = compressed[:len(compressed) // 2]
    add("gz_jsonl_cut", "truncated", {"d.jsonl.gz": cut}, rows_before_cut(gunzip, cut, b"\n"))
    flipped = bytearray(compressed)
    flipped[len(flipped) // 2: len(flipped) // 2 + 40] = b"\x00" * 40
    add("gz_jsonl_corrupt", "truncated", {"d.jsonl.gz": bytes(flipped)}, None)
    add("gz_garbage_after_magic", "truncated", {"d.jsonl.gz": b"\x1f\x8b" + NOISE[:200]}, 1,
        exits={"report_salvage": 2})
    frames = b"".join(zstandard.ZstdCompressor().compress(lines[i:i + 2000]) for i in range(0, len(lines), 2000))
    cut = frames[:len(frames) // 2]
    add("zst_jsonl_cut", "truncated", {"d.jsonl.zst": cut},
        rows_before_cut(zstandard.ZstdDecompressor().decompressobj, cut, b"\n"))
    corrupt = bytearray(frames)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 40] = b"\xff" * 40
    add("zst_jsonl_corrupt", "truncated", {"d.jsonl.zst": bytes(corrupt)}, None)
    add("zst_garbage_after_magic", "truncated", {"d.jsonl.zst": b"\x28\xb5\x2f\xfd" + NOISE[:200]}, 1,
        exits={"report_salvage": 2})
    compressed = gzip.compress(header + b"".join(f"q{i},,a{i}\n".encode() for i in range(1000)))
    cut = compressed[:len(compressed) // 2]
    rows = len([line for line in decompress_cut(gunzip, cut).split(b"\n") if line]) - 1  # less the header
    add("gz_csv_cut", "truncated", {"d.csv.gz": cut}, rows)

    # --- nothing readable: one message, exit 2 ------------------------------------------------------
    add("parquet_cut", "fatal", {"d.parquet": parquet[:len(parquet) // 2]}, exits=ALL_EXITS_2)
    add("parquet_garbage", "fatal", {"d.parquet": b"PAR1" + NOISE}, exits=ALL_EXITS_2)
    add("arrow_garbage", "fatal", {"d.arrow": b"ARROW1\x00\x00" + NOISE}, exits=ALL_EXITS_2)
    add("binary_nul_bytes", "fatal", {"d.bin": b"\x00\x01\x02" + NOISE}, where="byte offset 0",
        exits=ALL_EXITS_2)
    add("utf16_without_bom", "fatal", {"d.jsonl": text.encode("utf-16-le")}, where="byte offset 1",
        exits=ALL_EXITS_2)
    add("unknown_keys", "fatal", {"d.jsonl": jsonl([{"foo": i, "bar": 2} for i in range(5)])}, exits=ALL_EXITS_2)
    add("scalar_lines", "fatal", {"d.jsonl": b"1\n2\n3\n"}, exits=ALL_EXITS_2)
    add("csv_unknown_columns", "fatal", {"d.csv": b"a,b\n1,2\n"}, exits=ALL_EXITS_2)
    add("hf_folder_bad_state", "fatal", {"ds/state.json": b"{not json", "ds/data.arrow": b""}, target="ds",
        names="state.json", exits=ALL_EXITS_2)
    add("hf_folder_missing_arrow", "fatal", {"ds/state.json": json.dumps(
        {"_data_files": [{"filename": "data-00000.arrow"}]}).encode()}, target="ds", names="data-00000.arrow",
        exits=ALL_EXITS_2)
    add("missing_file", "fatal", {"here.jsonl": jsonl(GOOD)}, target="nowhere.jsonl", exits=ALL_EXITS_2)
    add("glob_matching_nothing", "fatal", {"here.jsonl": jsonl(GOOD)}, target="*.parquet", exits=ALL_EXITS_2)
    add("file_symlink_loop", "fatal", {"here.jsonl": jsonl(GOOD)}, target="loop_a.jsonl", exits=ALL_EXITS_2)
    os.symlink("loop_b.jsonl", root / "file_symlink_loop" / "loop_a.jsonl")
    os.symlink("loop_a.jsonl", root / "file_symlink_loop" / "loop_b.jsonl")
    add("dangling_symlink", "fatal", {"here.jsonl": jsonl(GOOD)}, target="gone.jsonl", exits=ALL_EXITS_2)
    os.symlink("deleted.jsonl", root / "dangling_symlink" / "gone.jsonl")
    add("folder_symlink_loop", "fatal", {"data/a.jsonl": jsonl(GOOD)}, target="data", names="again",
        where="loop", exits=ALL_EXITS_2)
    os.symlink("..", root / "folder_symlink_loop" / "data" / "again")
    if os.geteuid() != 0:  # root reads anything: permissions cannot be tested as root
        add("unreadable_file", "fatal", {"d.jsonl": jsonl(GOOD)}, exits=ALL_EXITS_2)
        (root / "unreadable_file" / "d.jsonl").chmod(0)
        add("unreadable_folder", "fatal", {"data/d.jsonl": jsonl(GOOD)}, target="data", exits=ALL_EXITS_2)
        (root / "unreadable_folder" / "data").chmod(0)
    return cases


if __name__ == "__main__":
    for case in build(Path(sys.argv[1])):
        print(f"{case.kind:10} {case.name:32} rows={case.rows}  {case.target}")
