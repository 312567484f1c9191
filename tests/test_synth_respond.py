"""respond fills or regenerates answers losing nothing; annotate parses judge verdicts into meta.score."""

from __future__ import annotations

import pytest

from oidkit.errors import ConfigError
from oidkit.models.backends import Generation, Usage
from oidkit.records import make_record
from oidkit.synth.respond import annotate, parse_judgement, respond


class Echo:
    model = "echo"

    def __init__(self, replies):
        self.usage, self.replies, self.requests = Usage(), list(replies), []

    def generate(self, requests, progress=None):
        self.requests.extend(requests)
        return [Generation(self.replies.pop(0), 1, 1) for _ in requests]


def instruction_only(text):
    return make_record([{"role": "user", "content": text}], id=text)


def test_respond_fills_missing_answers_and_skips_complete_records():
    complete = make_record([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], id="done")
    result = respond(Echo(["first answer", "second answer"]), [instruction_only("x"), complete, instruction_only("y")])
    assert [r["messages"][-1]["content"] for r in result.records] == ["first answer", "a", "second answer"]
    assert result.funnel["answered"] == 2 and result.records[0]["meta"]["synth"]["responder"] == "echo"


def test_regenerate_keeps_the_previous_answer():
    record = make_record([{"role": "user", "content": "q"}, {"role": "assistant", "content": "old"}], id="r")
    backend = Echo(["new"])
    result = respond(backend, [record], regenerate=True)
    assert result.records[0]["messages"][-1]["content"] == "new"
    assert result.records[0]["meta"]["synth"]["previous_answer"] == "old"
    assert backend.requests[0].messages == [{"role": "user", "content": "q"}]  # the old answer is not shown
    assert record["messages"][-1]["content"] == "old"  # inputs are not mutated


def test_empty_answers_are_rejected_not_written():
    result = respond(Echo(["  "]), [instruction_only("x")])
    assert result.records == [] and result.rejects[0]["reason"] == "empty_response"


def test_parse_judgement_formats():
    assert parse_judgement("Score: 4\nFollows instruction: yes\nRationale: Correct and clear.") == {
        "score": 4.0, "follows_instruction": True, "rationale": "Correct and clear."}
    assert parse_judgement("I'd give it 2/5. It rambles.")["score"] == 2.0
    assert parse_judgement("评分：5\n遵循指令: no")["follows_instruction"] is False
    assert parse_judgement("no idea")["score"] is None


def test_annotate_stores_score_and_counts_unparsable():
    records = [make_record([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], id=str(i))
               for i in range(3)]
    backend = Echo(["Score: 5\nFollows instruction: yes\nRationale: right", "Score: 3\nRationale: ok", "???"])
    result = annotate(backend, records)
    assert [r["meta"]["score"] for r in result.records] == [5.0, 3.0, None]
    assert result.funnel == {"records": 3, "scored": 2, "unparsable": 1, "mean_score": 4.0}
    assert "### User:\n2+2?" in backend.requests[0].messages[0]["content"]
    with pytest.raises(ConfigError, match="conversation"):
        annotate(backend, records, rubric="no placeholder")


def test_run_respond_reads_instruction_only_files_and_keeps_ingest_rejects(tiny_model_path, tmp_path):
    import json

    from oidkit.synth.run import run_respond

    data = tmp_path / "instructions.jsonl"
    rows = [{"messages": [{"role": "user", "content": "Name a colour."}]},
            {"messages": [{"role": "user", "content": "Count to three."}]},
            {"messages": [{"role": "wizard", "content": "?"}]}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_respond(data, tmp_path / "out", model=str(tiny_model_path), max_tokens=4)
    assert len(result.records) + result.funnel.get("empty_response", 0) == 2
    written = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert any(r["stage"] == "ingest" and r["reason"] == "unknown_role" for r in written)
    assert json.loads((tmp_path / "out" / "funnel.json").read_text())["funnel"]["records"] == 2


def test_min_score_curates_on_annotate_scores(tmp_path):
    from oidkit.curate.recipe import load_recipe
    from oidkit.curate.runner import run_recipe
    from oidkit.io import read_jsonl, write_jsonl

    records = [make_record([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                           id=f"r{i}", meta={"score": score} if score is not None else {})
               for i, score in enumerate([5.0, 3.5, 4.0, None])]
    write_jsonl(tmp_path / "in.jsonl", records)
    recipe = load_recipe(base={"input": str(tmp_path / "in.jsonl"), "output": str(tmp_path / "out"),
                               "steps": [{"op": "min_score", "min": 4}]})
    stats = run_recipe(recipe)
    assert [r["id"] for r in read_jsonl(tmp_path / "out" / "kept.jsonl")] == ["r0", "r2"]
    assert stats["operators"][0]["reasons"] == {"score_below_min": 1, "no_score": 1}
    rejects = {r["record"]["id"]: (r["reason"], r["value"]) for r in read_jsonl(tmp_path / "out" / "rejects.jsonl")}
    assert rejects == {"r1": ("score_below_min", 3.5), "r3": ("no_score", None)}
