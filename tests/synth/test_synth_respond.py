"""respond fills or regenerates answers losing nothing; annotate parses judge verdicts into meta.score."""

from __future__ import annotations

import json
import re

import pytest

from oidkit.errors import ConfigError
from oidkit.io import read_jsonl
from oidkit.models.backends import BackendError, Generation, Usage
from oidkit.records import first_user, make_record
from oidkit.synth.respond import annotate, parse_judgement, respond
from oidkit.synth.run import run_respond


class Echo:
    model = "echo"

    def __init__(self, replies):
        self.usage, self.replies, self.requests = Usage(), list(replies), []

    def generate(self, requests, progress=None):
        """A reply is the answer's text, or a ``Generation`` as it is (e.g. a failed one)."""
        self.requests.extend(requests)
        replies = [self.replies.pop(0) for _ in requests]
        return [r if isinstance(r, Generation) else Generation(r, 1, 1) for r in replies]


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


def test_annotate_rejects_records_whose_request_failed():
    records = [make_record([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], id=str(i))
               for i in range(3)]
    backend = Echo(["Score: 5", Generation("", error="HTTP 400: too long"), "Score: 3"])
    result = annotate(backend, records)
    assert [r["id"] for r in result.records] == ["0", "2"]
    assert [(r["reason"], r["record"]["id"], r["detail"]) for r in result.rejects] == [
        ("request_failed", "1", "HTTP 400: too long")]
    assert result.funnel == {"records": 3, "scored": 2, "request_failed": 1, "mean_score": 4.0}


def write_instructions(path, questions):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}]}) + "\n" for q in questions))
    return path


def test_run_respond_rejects_a_failed_request_keeps_the_rest_and_a_rerun_retries_only_it(scripted, tmp_path):
    questions = [f"question {i}" for i in range(5)]
    server = scripted({q: [f"answer {i}"] for i, q in enumerate(questions)} | {"question 2": [400]})
    data, out = write_instructions(tmp_path / "in.jsonl", questions), tmp_path / "out"
    run_respond(data, out, model="m", endpoint=server.url)
    assert [first_user(r) for r in read_jsonl(out / "synth.jsonl")] == [q for q in questions if q != "question 2"]
    [reject] = list(read_jsonl(out / "rejects.jsonl"))
    assert (reject["reason"], first_user(reject["record"])) == ("request_failed", "question 2")
    assert reject["detail"].startswith("HTTP 400") and "scripted error" in reject["detail"]
    saved = json.loads((out / "funnel.json").read_text())
    assert saved["funnel"] == {"records": 5, "answered": 4, "request_failed": 1, "kept": 4}
    assert saved["usage"]["failures"] == 1 and saved["usage"]["requests"] == 5
    # The endpoint now answers it: the rerun takes the other four from the cache and asks only this one.
    server.script["question 2"] = ["answer 2"]
    server.calls.clear()
    again = run_respond(data, out, model="m", endpoint=server.url)
    assert server.calls == ["question 2"] and again.usage["cached"] == 4 and again.usage["failures"] == 0
    assert [r["messages"][-1]["content"] for r in read_jsonl(out / "synth.jsonl")] == [f"answer {i}" for i in range(5)]
    assert list(read_jsonl(out / "rejects.jsonl")) == []


@pytest.mark.parametrize(("status", "most_requests"), [(401, 4), (503, 10 + 3)])
def test_run_respond_stops_early_against_a_dead_endpoint(scripted, tmp_path, status, most_requests):
    questions = [f"question {i}" for i in range(60)]
    server = scripted({q: [status] for q in questions})
    data = write_instructions(tmp_path / "in.jsonl", questions)
    where = re.escape(f"{server.url}/v1/chat/completions (model m): ") + rf".*HTTP {status}"
    with pytest.raises(BackendError, match=where):
        run_respond(data, tmp_path / "out", model="m", endpoint=server.url)
    # 401 at once (4 in flight); 503 after 10 failures in a row (plus 3 in flight), each retried 5 times
    assert len(set(server.calls)) <= most_requests


def test_run_respond_reads_instruction_only_files_and_keeps_ingest_rejects(tiny_model_path, tmp_path):
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
