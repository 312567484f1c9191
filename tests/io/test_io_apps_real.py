"""The real application files of the shared data folder (``apps/``), read as their authors ship them; counts
checked against an independent read with the standard library. Skipped when the folder is absent."""

from __future__ import annotations

import ast
import gzip
import json
import zipfile

import pytest

from oidkit.errors import InputError
from oidkit.io import ReadStats, read_records

SGD_MAPPING = "messages=turns,role=speaker,content=utterance,user_tag=USER,assistant_tag=SYSTEM"
DIALOGSUM_MAPPING = "prompt=dialogue,response=summary"


def apps_file(shared_data, relative: str):
    path = shared_data / "apps" / relative
    if not path.exists():
        pytest.skip(f"{relative} not found in {shared_data / 'apps'}")
    return path


@pytest.mark.real
def test_crosswoz_zip_reads_every_dialogue_keyed_by_its_id(shared_data):
    path = apps_file(shared_data, "dialogue/crosswoz_val.json.zip")
    with zipfile.ZipFile(path) as archive:
        expected = json.loads(archive.read("val.json"))
    stats = ReadStats()
    records = list(read_records(path, role_map={"usr": "user", "sys": "assistant"}, stats=stats))
    assert len(records) == len(expected) == 500 and not stats.rejected
    first_id = next(iter(expected))
    assert records[0]["id"] == first_id
    assert [m["content"] for m in records[0]["messages"]] == [m["content"] for m in expected[first_id]["messages"]]
    assert {m["role"] for r in records for m in r["messages"]} == {"user", "assistant"}


@pytest.mark.real
def test_sgd_gzip_shards_read_with_a_column_mapping(shared_data):
    folder = apps_file(shared_data, "dialogue/sgd/train")
    expected = [d for f in sorted(folder.glob("*.json.gz")) for d in json.loads(gzip.decompress(f.read_bytes()))]
    stats = ReadStats()
    records = list(read_records(folder, columns=SGD_MAPPING, stats=stats))
    assert len(records) == len(expected) == 640 and not stats.rejected
    assert records[5]["meta"]["dialogue_id"] == expected[5]["dialogue_id"]
    assert [m["content"] for m in records[5]["messages"]] == [t["utterance"] for t in expected[5]["turns"]]
    assert records[5]["messages"][1]["role"] == "assistant"


@pytest.mark.real
def test_dialogsum_train_python_literals_are_refused_then_read_safely(shared_data):
    path = apps_file(shared_data, "summarisation/dialogsum.train.jsonl")
    with pytest.raises(InputError, match="Python dict literal"):
        list(read_records(path, columns=DIALOGSUM_MAPPING))
    expected = [ast.literal_eval(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = list(read_records(path, columns=DIALOGSUM_MAPPING, python_literals=True))
    assert len(records) == len(expected) == 12_460
    assert records[-1]["messages"][1]["content"] == expected[-1]["summary"]
    assert records[0]["meta"]["fname"] == "train_0"


@pytest.mark.real
@pytest.mark.parametrize(("split", "summary"), [("dev", "summary"), ("test", "summary1")])
def test_dialogsum_json_splits(shared_data, split, summary):
    path = apps_file(shared_data, f"summarisation/dialogsum.{split}.jsonl")
    expected = [json.loads(line) for line in path.open(encoding="utf-8")]
    records = list(read_records(path, columns=f"prompt=dialogue,response={summary}"))
    assert len(records) == len(expected) == 500
    assert records[7]["messages"][0]["content"] == expected[7]["dialogue"]
