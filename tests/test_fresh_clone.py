"""A clone without the shared data folder runs the demo's loop: what needs the folder is skipped with one clear
line, recorded where users look (stats.json, the report, the card), never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from oidkit.cli import app

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["rivers", "bread", "chess", "volcanoes", "bicycles", "tea", "glaciers", "violins", "bees", "maps"]


def sharegpt_rows() -> list[dict]:
    return [{"id": f"c{i}", "conversations": [
        {"from": "human", "value": f"Explain how {topic} work, in a few plain sentences for a curious student {i}."},
        {"from": "gpt", "value": f"Here is a short explanation of {topic}. They follow simple rules that you can "
                                 f"observe every day, and each part has a clear job. Example number {i} shows it."}]}
        for i, topic in enumerate(TOPICS * 3)]


def test_demo_curate_report_and_synth_steps_without_shared_data(tmp_path, monkeypatch):
    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(tmp_path / "empty-shared"))
    (tmp_path / "empty-shared").mkdir()
    data = tmp_path / "sharegpt.json"
    data.write_text(json.dumps(sharegpt_rows()))
    runner = CliRunner()
    curated, report = tmp_path / "curated", tmp_path / "report"
    result = runner.invoke(app, ["curate", str(ROOT / "recipes" / "default.yaml"), f"input={data}",
                                 f"output={curated}"])
    assert result.exit_code == 0, result.output
    missing = tmp_path / "empty-shared" / "gsm8k_test.jsonl"
    assert f"note: benchmark gsm8k skipped: no file at {missing}" in result.output  # one line, not wrapped
    stats = orjson.loads((curated / "stats.json").read_bytes())
    [decontam] = [s for s in stats["operators"] if s["op"] == "decontaminate"]
    assert [n.split(":")[0] for n in decontam["notes"]] == [
        "benchmark gsm8k skipped", "benchmark self_instruct_eval skipped", "benchmark belle_eval skipped",
        "benchmark cmmlu skipped"]
    assert (curated / "splits" / "train.jsonl").exists() and stats["output"]["records"] > 0

    result = runner.invoke(app, ["report", str(curated), "-o", str(report)])
    assert result.exit_code == 0, result.output
    card = (report / "README.md").read_text()
    assert "What curation could not do" in card and "benchmark cmmlu skipped: no file at" in card

    seeds = tmp_path / "empty-shared" / "self_instruct_seed_tasks.jsonl"
    result = runner.invoke(app, ["synth", "self-instruct", "--seeds", str(seeds), "--model", "no-such-model",
                                 "-o", str(tmp_path / "synth")])
    assert result.exit_code == 2 and "seed tasks not found" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "synth").exists()  # stopped before a model or an output folder

