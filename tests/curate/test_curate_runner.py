"""The recipe runner: validation, full accounting, no-op re-runs, resume, outputs, CLI, import boundaries."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from oidkit.curate.recipe import load_recipe
from oidkit.curate.runner import run_recipe
from oidkit.errors import ConfigError
from oidkit.io import read_jsonl, write_jsonl
from oidkit.records import make_record

ROOT = Path(__file__).resolve().parents[2]
ALL_STEPS = [
    {"op": "normalise"},
    {"op": "heuristics"},
    {"op": "language", "keep": ["en", "zh"]},
    {"op": "exact_dedup"},
    {"op": "near_dedup", "field": "instruction", "threshold": 0.7},
    {"op": "decontaminate", "benchmarks": ["gsm8k"]},
    {"op": "pii"},
    {"op": "mix", "caps": {"*": 1000}},
    {"op": "split", "ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}},
]


def crafted_records() -> list[dict]:
    """Records that every operator of ALL_STEPS has something to do with, with known outcomes."""
    answer = ("Here is a clear answer with enough detail to be useful, written in complete sentences for the "
              "reader. It explains the idea step by step and ends properly.")
    long_question = ("Write a short story about a lighthouse keeper who finds a message in a bottle washed up on "
                     "the rocks after a storm, and decides to answer it even though the letter is decades old")
    pairs = [(f"Question number {i}: explain topic {i} in a few sentences, please.", answer) for i in range(30)]
    pairs += [
        ("Question number 0: explain topic 0 in a few sentences, please.", answer),  # exact duplicate of #0
        (long_question + ".", answer),
        (long_question + " and very faded.", answer + " Extra."),  # near duplicate of the previous one
        ("Quelle est la capitale de la France ? Réponds en une phrase complète.",
         "La capitale de la France est Paris, une très belle ville au bord de la Seine."),
        ("Tell me what you think about politics today in detail.", "As an AI language model, I have no views."),
        ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
         "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck "
         "egg. How much in dollars does she make every day at the farmers' market?", answer),  # GSM8K test #0
        ("My e-mail is someone@example.com, please write a reply to my landlord.", answer),
        ("请解释一下什么是机器学习，用几句话说明它的基本思想和常见用途。",
         "机器学习是让计算机从数据中学习规律的方法。它通过训练模型来预测或分类，常用于推荐、识别和翻译等任务。"),
    ]
    return [make_record([{"role": "user", "content": u}, {"role": "assistant", "content": a}],
                        source={"file": "crafted.jsonl", "index": i}) for i, (u, a) in enumerate(pairs)]


@pytest.fixture
def crafted_input(tmp_path, shared_data, monkeypatch) -> Path:
    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(shared_data))
    path = tmp_path / "in.jsonl"
    write_jsonl(path, crafted_records())
    return path


def run(input_path: Path, out: Path, steps=ALL_STEPS, **extra):
    recipe = load_recipe(base={"input": str(input_path), "output": str(out), "steps": steps, **extra})
    return run_recipe(recipe)


def assert_accounting(stats: dict, out: Path, input_ids: list[str]) -> None:
    """kept + rejects == input, overall and for every operator, with stats agreeing with the files."""
    kept = list(read_jsonl(out / "kept.jsonl"))
    rejects = list(read_jsonl(out / "rejects.jsonl"))
    assert Counter(r["id"] for r in kept) + Counter(r["record"]["id"] for r in rejects) == Counter(input_ids)
    assert stats["input"]["records"] == len(input_ids) and stats["output"]["records"] == len(kept)
    flowing = len(input_ids)
    for step in stats["operators"]:
        dropped_here = [r for r in rejects if r["operator"] == step["name"]]
        assert step["in"] == flowing and step["in"] - step["out"] == step["dropped"] == len(dropped_here)
        assert step["reasons"] == dict(Counter(r["reason"] for r in dropped_here))
        flowing = step["out"]
    assert flowing == len(kept)


def test_every_operator_accounts_for_every_record(crafted_input, tmp_path):
    out = tmp_path / "out"
    stats = run(crafted_input, out)
    assert_accounting(stats, out, [r["id"] for r in crafted_records()])
    reasons = {step["name"]: step["reasons"] for step in stats["operators"]}
    assert reasons["heuristics"] == {"refusal": 1}
    assert reasons["language"] == {"language_not_kept": 1}
    assert reasons["exact_dedup"] == {"exact_duplicate": 1}
    assert reasons["near_dedup"] == {"near_duplicate": 1}
    assert reasons["decontaminate"] == {"benchmark_overlap": 1}
    pii = next(s for s in stats["operators"] if s["name"] == "pii")
    assert pii["extra"] == {"email": 1} and pii["modified"] == 1
    rejects = {r["reason"]: r for r in read_jsonl(out / "rejects.jsonl")}
    assert rejects["exact_duplicate"]["duplicate_of"] == crafted_records()[0]["id"]
    assert rejects["benchmark_overlap"]["value"]["benchmark"] == "gsm8k"
    assert rejects["benchmark_overlap"]["value"]["item"] == "0"
    assert all(r["stage"] == "curate" for r in rejects.values())
    assert sum(stats["output"]["splits"].values()) == stats["output"]["records"]
    assert {p.name for p in (out / "splits").iterdir()} == {"train.jsonl", "validation.jsonl", "test.jsonl"}
    resolved = (out / "recipe.yaml").read_text()
    assert "min_alnum_ratio: 0.25" in resolved  # defaults are written out in the copy


def test_language_step_stamps_kept_records_with_their_language(tmp_path):
    english, french, chinese = (crafted_records()[i] for i in (0, 33, 37))
    hi = make_record([{"role": "user", "content": "hi"}, english["messages"][1]])  # "hi" alone reads as af
    records = [english, french, chinese, hi]
    write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out"
    stats = run(tmp_path / "in.jsonl", out, steps=[{"op": "language", "keep": ["en", "zh"]}])
    assert_accounting(stats, out, [r["id"] for r in records])
    kept = [(r["id"], r["meta"]["lang"]) for r in read_jsonl(out / "kept.jsonl")]
    assert kept == [(english["id"], "en"), (chinese["id"], "zh"), (hi["id"], "en")]
    assert stats["operators"][0]["modified"] == 3


def test_recipe_input_reads_other_field_names_through_a_column_mapping(tmp_path):
    rows = [{"fname": f"d{i}", "dialogue": f"#Person1#: shall we meet at {i} o'clock? #Person2#: yes, see you.",
             "summary": f"They agree to meet at {i}."} for i in range(3)]
    (tmp_path / "in.jsonl").write_text("".join(repr(row) + "\n" for row in rows))  # Python literals, as DialogSum
    spec = {"paths": [str(tmp_path / "in.jsonl")], "python_literals": True,
            "columns": {"prompt": "dialogue", "response": "summary"}}
    recipe = load_recipe(base={"input": spec, "output": str(tmp_path / "out"), "steps": [{"op": "exact_dedup"}]})
    stats = run_recipe(recipe)
    kept = list(read_jsonl(tmp_path / "out" / "kept.jsonl"))
    assert stats["output"]["records"] == 3 and not (tmp_path / "out" / "ingest_rejects.jsonl").exists()
    assert [(r["messages"][1]["content"], r["meta"]["fname"]) for r in kept] == [
        (row["summary"], row["fname"]) for row in rows]


def test_finished_run_is_a_no_op_and_changes_rerun(crafted_input, tmp_path):
    out = tmp_path / "out"
    first = run(crafted_input, out, steps=ALL_STEPS[:2])
    before = (out / "kept.jsonl").stat().st_mtime_ns
    again = run(crafted_input, out, steps=ALL_STEPS[:2])
    assert again["up_to_date"] and (out / "kept.jsonl").stat().st_mtime_ns == before
    assert again["fingerprint"] == first["fingerprint"]
    changed = run(crafted_input, out, steps=[ALL_STEPS[0], {"op": "heuristics", "min_chars": 100}])
    assert not changed.get("up_to_date") and changed["fingerprint"] != first["fingerprint"]


def test_interrupted_run_resumes_after_the_last_finished_step(crafted_input, tmp_path, monkeypatch):
    from oidkit.curate.ops.heuristics import Heuristics
    from oidkit.curate.ops.pii import Pii

    out = tmp_path / "out"
    steps = [{"op": "heuristics"}, {"op": "pii"}]

    def crash(self, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pii, "map", crash)
    with pytest.raises(KeyboardInterrupt):
        run(crafted_input, out, steps=steps)
    assert (out / ".steps" / "00-heuristics" / "done.json").exists() and not (out / "stats.json").exists()
    monkeypatch.undo()
    monkeypatch.setenv("OIDKIT_SHARED_DATA", "/nonexistent")
    monkeypatch.setattr(Heuristics, "keep", crash)  # finished: must not run again
    stats = run(crafted_input, out, steps=steps)
    assert_accounting(stats, out, [r["id"] for r in crafted_records()])
    assert not (out / ".steps").exists()


def test_recipe_validation_names_the_problem_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown operator 'dedupe'.*exact_dedup"):
        load_recipe(base={"input": "x", "output": "y", "steps": [{"op": "dedupe"}]})
    with pytest.raises(ConfigError, match=r"min_char.*Extra inputs.*parameters of heuristics: min_turns"):
        load_recipe(base={"input": "x", "output": "y", "steps": [{"op": "heuristics", "min_char": 5}]})
    with pytest.raises(ConfigError, match="steps"):
        load_recipe(base={"input": "x", "output": "y"})
    with pytest.raises(ConfigError, match="not key=value"):
        load_recipe(base={"input": "x", "output": "y", "steps": []}, overrides=["engine"])


def test_overrides_by_step_name_index_and_shorthand():
    recipe = load_recipe(ROOT / "recipes" / "default.yaml",
                         ["input=a.jsonl", "input.salvage=true", "output=o", "heuristics.min_chars=99",
                          "steps.0.unicode=NFKC", "engine=ray"])
    assert recipe.input.paths == ["a.jsonl"] and recipe.input.salvage and recipe.output.path == "o"
    assert recipe.steps[1].params()["min_chars"] == 99 and recipe.steps[0].params()["unicode"] == "NFKC"
    assert recipe.engine == "ray"


def test_cli_one_off_ops_and_ops_listing(crafted_input, tmp_path):
    from oidkit.cli import app

    result = CliRunner().invoke(app, ["curate", "--op", "pii", "--op", "exact_dedup", str(crafted_input),
                                      str(tmp_path / "o"), "pii.types=[email]"])
    assert result.exit_code == 0, result.output
    stats = orjson.loads((tmp_path / "o" / "stats.json").read_bytes())
    assert [s["name"] for s in stats["operators"]] == ["pii", "exact_dedup"]
    assert stats["operators"][0]["extra"] == {"email": 1}
    listing = CliRunner().invoke(app, ["ops"])
    assert listing.exit_code == 0 and "near_dedup" in listing.output and "threshold" in listing.output


def test_local_engine_never_imports_ray_or_torch(crafted_input, tmp_path):
    code = f"""
import sys
from oidkit.curate.recipe import load_recipe
from oidkit.curate.runner import run_recipe
steps = {ALL_STEPS!r}
run_recipe(load_recipe(base={{"input": {str(crafted_input)!r}, "output": {str(tmp_path / 'o')!r}, "steps": steps}}))
assert "ray" not in sys.modules, "ray imported"
assert "torch" not in sys.modules, "torch imported"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.real
def test_default_recipe_on_real_sharegpt_accounts_for_every_record(sharegpt_file, shared_data, tmp_path,
                                                                   monkeypatch):
    """The default recipe on the first 2,000 salvaged records of the real file (the demo runs all of it)."""
    from oidkit.io import read_records

    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(shared_data))
    records = list(islice(read_records(sharegpt_file, salvage=True, on_reject=lambda reject: None), 2000))
    write_jsonl(tmp_path / "sharegpt.jsonl", records)
    out = tmp_path / "curated"
    recipe = load_recipe(ROOT / "recipes" / "default.yaml", [f"input={tmp_path / 'sharegpt.jsonl'}", f"output={out}"])
    stats = run_recipe(recipe)
    assert_accounting(stats, out, [r["id"] for r in records])
    dropped = {step["name"]: step["dropped"] for step in stats["operators"]}
    assert dropped["heuristics"] > 0 and dropped["exact_dedup"] > 0 and dropped["near_dedup"] > 0
    assert 0.5 < stats["output"]["records"] / len(records) < 0.95


def test_parquet_output_in_shards_reads_back_to_the_kept_records(crafted_input, tmp_path):
    from oidkit.io import read_records

    out = tmp_path / "out"
    stats = run(crafted_input, out, steps=[{"op": "exact_dedup"}],
                output={"path": str(out), "format": "parquet", "shard_size": 10})
    shards = sorted(out.glob("kept-*.parquet"))
    assert len(shards) == 4 and [str(p) for p in shards] == stats["output"]["paths"]
    kept_ids = [r["id"] for r in read_records(shards)]
    rejected = [r["record"]["id"] for r in read_jsonl(out / "rejects.jsonl")]
    assert len(kept_ids) == stats["output"]["records"] == 37
    assert Counter(kept_ids) + Counter(rejected) == Counter(r["id"] for r in crafted_records())


def test_a_rewrite_that_breaks_a_conversation_rejects_the_original(tmp_path):
    html_only = make_record([{"role": "user", "content": "Show me the markup."},
                             {"role": "assistant", "content": "<div><br/></div>"}], id="html")
    fine = make_record([{"role": "user", "content": "Say hi <b>loudly</b>."},
                        {"role": "assistant", "content": "HI!"}], id="fine")
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [html_only, fine])
    stats = run(path, tmp_path / "out", steps=[{"op": "normalise"}])
    assert_accounting(stats, tmp_path / "out", ["html", "fine"])
    (reject,) = list(read_jsonl(tmp_path / "out" / "rejects.jsonl"))
    assert reject["reason"] == "empty_assistant_turn" and reject["operator"] == "normalise"
    assert reject["record"]["messages"][1]["content"] == "<div><br/></div>"  # kept as it was, nothing lost
    from oidkit.io import read_records

    rejected_on_read = []
    assert [r["id"] for r in read_records(tmp_path / "out" / "kept.jsonl", on_reject=rejected_on_read.append)] == [
        "fine"] and rejected_on_read == []


def test_a_run_replaces_an_earlier_runs_outputs_in_the_other_layout_and_keeps_other_files(crafted_input, tmp_path):
    """A local run into a folder that held a Ray run (kept / rejects as shard sets) leaves only its own single
    files, and a sharded run removes an earlier single file; files that are not our outputs stay."""
    from oidkit.io import write_records

    out = tmp_path / "out"
    out.mkdir()
    ray_like = [write_records(crafted_records()[:5], out / name, shard_size=2) for name in ("kept.jsonl",
                                                                                           "rejects.jsonl")]
    assert len(ray_like[0]) == 3 and (out / "kept.shards.json").exists()  # the set a Ray run leaves
    (out / "notes.txt").write_text("mine")
    (out / "kept-old.jsonl").write_text("mine too\n")  # not a shard name of ours
    stats = run(crafted_input, out, steps=[{"op": "exact_dedup"}])
    assert sorted(p.name for p in out.iterdir()) == ["kept-old.jsonl", "kept.jsonl", "notes.txt", "recipe.yaml",
                                                     "rejects.jsonl", "stats.json"]
    assert_accounting(stats, out, [r["id"] for r in crafted_records()])
    stats = run(crafted_input, out, steps=[{"op": "exact_dedup"}], output={"path": str(out), "shard_size": 20})
    assert sorted(p.name for p in out.glob("kept*")) == ["kept-00000.jsonl", "kept-00001.jsonl", "kept-old.jsonl",
                                                         "kept.shards.json"]
    assert [Path(p).name for p in stats["output"]["paths"]] == ["kept-00000.jsonl", "kept-00001.jsonl"]


def test_a_run_in_another_format_or_without_a_split_removes_the_earlier_runs_kept_records_and_splits(
        crafted_input, tmp_path):
    """Re-running into the same folder must not leave the earlier run's outputs beside the new ones: a reader
    of ``kept.jsonl`` or ``splits/`` would take stale records for this run's."""
    out = tmp_path / "out"
    run(crafted_input, out, steps=[{"op": "exact_dedup"}, {"op": "split", "ratios": {"train": 0.8, "validation": 0.2}}])
    assert (out / "kept.jsonl").exists() and sorted(p.name for p in (out / "splits").iterdir()) == [
        "train.jsonl", "validation.jsonl"]
    (out / "notes.txt").write_text("mine")
    stats = run(crafted_input, out, steps=[{"op": "exact_dedup"}], output={"path": str(out), "format": "parquet"})
    assert sorted(p.name for p in out.iterdir()) == ["kept.parquet", "notes.txt", "recipe.yaml", "rejects.jsonl",
                                                     "stats.json"]
    assert stats["output"]["splits"] == {}
    run(crafted_input, out, steps=[{"op": "exact_dedup"}], output={"path": str(out), "format": "jsonl",
                                                                   "shard_size": 3})
    assert not (out / "kept.parquet").exists() and (out / "kept.shards.json").exists()
    run(crafted_input, out, steps=[{"op": "exact_dedup"}], output={"path": str(out), "format": "parquet"})
    assert sorted(p.name for p in out.glob("kept*")) == ["kept.parquet"]  # the jsonl shards and their manifest went
