"""``oid arena``: blind pairs, votes in the review log, win rates with Wilson intervals, annotator agreement."""

from __future__ import annotations

import json
import time

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.core.stats import wilson_interval
from oidkit.errors import ConfigError
from oidkit.io import write_jsonl
from oidkit.models.backends import LocalBackend
from oidkit.review.agreement import cohen_kappa
from oidkit.review.arena import Arena, arena_report, create_arena_app, load_prompts, swapped
from oidkit.review.log import ReviewLog


@pytest.fixture(scope="module")
def second_tiny_model(tmp_path_factory):
    from oidkit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-b") / "model", seed=1)


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "held_out.jsonl"
    write_jsonl(path, [{"id": f"p{i}", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"},
        {"role": "assistant", "content": f"Reference {i}."}]} for i in range(4)])
    return path


@pytest.fixture
def arena(tiny_model, tiny_model_path, second_tiny_model, prompts_file, tmp_path):
    backends = {"base": LocalBackend(tiny_model_path, loaded=tiny_model), "tuned": LocalBackend(second_tiny_model)}
    log = ReviewLog(tmp_path / "votes.jsonl")
    yield Arena(backends, load_prompts(prompts_file), log, params={"max_tokens": 6})
    log.close()


def test_prompts_are_the_turns_before_the_last_answer(prompts_file, tmp_path):
    prompts = load_prompts(prompts_file)
    assert [p.key for p in prompts] == ["held_out:p0", "held_out:p1", "held_out:p2", "held_out:p3"]
    assert prompts[1].messages == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Question 1?"}]
    assert [p.key for p in load_prompts(prompts_file, limit=2)] == ["held_out:p0", "held_out:p1"]
    answers_only = tmp_path / "answers.jsonl"
    write_jsonl(answers_only, [{"messages": [{"role": "system", "content": "s"},
                                             {"role": "assistant", "content": "a"}]}])
    with pytest.raises(ConfigError, match="no conversation with a user turn"):
        load_prompts(answers_only)


def test_the_side_each_model_is_shown_on_is_random_across_prompts_and_stable_for_one(arena):
    sides = [swapped(f"k{i}", "ana") for i in range(200)]
    assert 70 < sum(sides) < 130  # a coin per prompt, not always the same side
    assert sides == [swapped(f"k{i}", "ana") for i in range(200)]  # stable across reloads and restarts
    assert [swapped("k1", name) for name in ("ana", "bob", "cy", "dee", "eve", "fay")].count(True) not in (0, 6)


def test_vote_round_trip_hides_names_until_the_vote_and_logs_who_and_when(arena):
    # as the arena's own page: addressed as 127.0.0.1, its writes from that origin (the review app's guard)
    client = TestClient(create_arena_app(arena, annotator="ana"), base_url="http://127.0.0.1",
                        headers={"Origin": "http://127.0.0.1"})
    assert TestClient(create_arena_app(arena)).get("/api/meta").status_code == 403  # another host name
    item = client.get("/api/next", params={"annotator": "ana"}).json()
    assert item["key"] == "held_out:p0" and item["position"] == 1 and item["total"] == 4 and item["voted"] == 0
    assert len(item["answers"]) == 2 and "base" not in json.dumps(item) and "tuned" not in json.dumps(item)
    assert item["prompt"][-1] == {"role": "user", "content": "Question 0?"}

    shown = ["tuned", "base"] if swapped("held_out:p0", "ana") else ["base", "tuned"]
    voted = client.post("/api/vote", json={"key": item["key"], "annotator": "ana", "choice": "B", "note": "clearer"})
    assert voted.status_code == 200 and voted.json()["models"] == shown
    line = orjson.loads(arena.log.path.read_bytes().splitlines()[-1])
    assert line["annotator"] == "ana" and line["winner"] == shown[1] and line["choice"] == "B"
    assert line["answers"] == item["answers"] and line["note"] == "clearer" and line["time"].startswith("20")

    deadline = time.monotonic() + 60  # the next prompt's answers are generated while ana reads and votes
    while "held_out:p1" not in arena.answers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "held_out:p1" in arena.answers
    following = client.get("/api/next", params={"annotator": "ana", "after": item["key"]}).json()
    assert following["key"] == "held_out:p1" and following["voted"] == 1
    assert client.get("/api/next", params={"annotator": "bob"}).json()["key"] == "held_out:p0"  # bob has not voted

    assert client.post("/api/vote", json={"key": item["key"], "annotator": "ana", "choice": "C"}).status_code == 422
    assert client.post("/api/vote", json={"key": "nope", "annotator": "ana", "choice": "A"}).status_code == 404
    seq = arena.log.seq
    other_site = client.post("/api/vote", json={"key": item["key"], "annotator": "ana", "choice": "A"},
                             headers={"Origin": "http://evil.example"})
    assert other_site.status_code == 403 and arena.log.seq == seq  # no line written
    typed = client.post("/api/prompt", json={"annotator": "ana", "text": "你好，请介绍一下你自己。"}).json()
    assert typed["key"].startswith("typed:") and typed["prompt"][0]["content"] == "你好，请介绍一下你自己。"
    assert client.post("/api/vote", json={"key": typed["key"], "annotator": "ana", "choice": "tie"}).status_code == 200
    assert arena.log.votes[typed["key"]]["ana"]["prompt"][0]["content"] == "你好，请介绍一下你自己。"


def vote_as(log: ReviewLog, annotator: str, key: str, winner: str) -> None:
    models = ["base", "tuned"]
    choice = {"base": "A", "tuned": "B"}.get(winner, winner)
    log.vote(key, annotator, models=models, choice=choice, prompt=[{"role": "user", "content": key}],
             answers=["a", "b"])


def test_report_win_rates_wilson_intervals_and_agreement_of_two_annotators(tmp_path):
    log = ReviewLog(tmp_path / "votes.jsonl")
    ana = ["tuned"] * 6 + ["base"] * 3 + ["tie"]
    bob = ["tuned", "tuned", "base", "base", "both_bad"]  # on ana's first five prompts: agrees on 2 of 5
    for i, winner in enumerate(ana):
        vote_as(log, "ana", f"k{i}", winner)
    for i, winner in enumerate(bob):
        vote_as(log, "bob", f"k{i}", winner)
    vote_as(log, "bob", "k0", "tuned")  # a second vote on the same prompt replaces the first
    report = arena_report(log)
    log.close()

    (pair,) = report["pairs"]
    assert pair["votes"] == 15 and pair["annotators"] == 2 and report["votes"] == 15
    tuned = next(r for r in pair["results"] if r["model"] == "tuned")
    assert tuned["wins"] == 8 and tuned["win_rate"] == pytest.approx(8 / 15, abs=1e-4)
    assert tuned["win_rate_95"] == pytest.approx(list(wilson_interval(8, 15)), abs=1e-4)
    assert pair["ties"] == 1 and pair["both_bad"] == 1
    assert pair["first_preferred_when_decided"]["n"] == 13  # base preferred in 5 of the 13 decided votes
    assert pair["first_preferred_when_decided"]["rate"] == pytest.approx(5 / 13, abs=1e-4)
    (agree,) = report["agreement"]
    assert agree["annotators"] == ["ana", "bob"] and agree["n"] == 5 and agree["percent"] == 0.4
    assert agree["kappa"] == pytest.approx(cohen_kappa(ana[:5], bob), abs=1e-4)


def test_cli_report_reads_the_log_without_touching_it(tmp_path):
    path = tmp_path / "votes.jsonl"
    log = ReviewLog(path)
    for i in range(3):
        vote_as(log, "ana", f"k{i}", "tuned")
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"seq": 4, "cut by a ki')  # a kill in the middle of a write
    before = path.read_bytes()
    result = CliRunner().invoke(app, ["arena", "report", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 votes" in result.output and "tuned: wins 3 (100.0%, 95% CI 43.9-100.0%)" in result.output
    assert "1 unreadable line(s) skipped" in result.output and path.read_bytes() == before
    result = CliRunner().invoke(app, ["arena", "report", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no arena log there" in " ".join(result.output.split())
