"""oid report: numbers in stats.json against values known by construction, the card, the page's safety."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from oidkit.cli import app
from oidkit.errors import ConfigError, InputError, OidError
from oidkit.io import read_jsonl, write_jsonl
from oidkit.records import make_record, make_reject
from oidkit.report.build import build_report
from oidkit.report.card import size_category
from oidkit.report.stats import collect
from oidkit.report.tokens import count_whitespace_cjk, token_counter, whitespace_cjk_length
from oidkit.report.verbs import first_word_zh, verb_object

ENGLISH = "The committee discussed the budget for the next year and agreed on several changes to the plan."
CHINESE = "今天天气很好，我们一起去公园散步吧，顺便看看湖边的花。"


def conversation(*turns: str, system: str | None = None) -> list[dict]:
    """Messages alternating user/assistant from ``turns``, with an optional system prompt first."""
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]


def words(n: int, word: str = "w") -> str:
    return " ".join([word] * n)


def stats_of(records: list[dict]) -> dict:
    return collect(records, count_whitespace_cjk)[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("", 0), ("one two  three\nfour", 4), ("中文字", 3), ("abc 中文 def", 4), ("写code吧", 3),
    ("こんにちは世界", 7), ("안녕 하세요", 5),
])
def test_whitespace_cjk_rule(text, expected):
    assert whitespace_cjk_length(text) == expected


def test_token_percentiles_match_an_independent_computation():
    # user turn i has i words (1..101) and assistant turn i has 2*i CJK characters (2..202): the linear
    # percentile of 1..101 at p is p + 1, and of 2..202 is 2 * (p + 1).
    records = [make_record(conversation(words(i), "字" * (2 * i))) for i in range(1, 102)]
    tokens = stats_of(records)["tokens"]
    for p in (10, 25, 50, 75, 90, 99):
        assert tokens["user"][f"p{p}"] == p + 1
        assert tokens["assistant"][f"p{p}"] == 2 * (p + 1)
    assert tokens["user"]["total"] == sum(range(1, 102))
    assert tokens["user"]["mean"] == pytest.approx(statistics.mean(range(1, 102)))
    assert (tokens["assistant"]["min"], tokens["assistant"]["max"]) == (2, 202)
    histogram = tokens["histogram"]
    assert sum(histogram["user"]) == sum(histogram["assistant"]) == 101
    edges = histogram["edges"]
    assert histogram["user"] == [sum(lo <= i < hi for i in range(1, 102)) for lo, hi in pairwise(edges)]


def test_turn_counts_exclude_system_and_count_each_record():
    turn_plan = [2, 2, 2, 4, 4, 6]
    records = [make_record(conversation(*[f"turn {j}" for j in range(n)], system="be nice" if n == 4 else None))
               for n in turn_plan]
    stats = stats_of(records)
    assert stats["turns"]["counts"] == {str(k): v for k, v in Counter(turn_plan).items()}
    assert stats["turns"]["summary"]["p50"] == statistics.median(turn_plan)
    overview = stats["overview"]
    assert overview["turns"] == sum(turn_plan)
    assert overview["messages"] == sum(turn_plan) + 2
    assert overview["records_with_system_prompt"] == 2
    assert overview["user_turns"] == overview["assistant_turns"] == sum(turn_plan) // 2


def test_languages_sources_and_per_group_medians():
    records = (
        [make_record(conversation(f"{ENGLISH} {i}", words(10)), source={"file": "/x/en.jsonl", "format": "alpaca"})
         for i in range(6)]
        + [make_record(conversation(CHINESE + str(i), "好" * 4), source={"file": "/y/zh.json", "format": "sharegpt"})
           for i in range(3)]
        + [make_record(conversation("bonjour", "salut"), meta={"lang": "fr"})]  # meta.lang wins over detection
    )
    stats = stats_of(records)
    languages = {row["lang"]: row for row in stats["languages"]}
    assert {k: v["records"] for k, v in languages.items()} == {"en": 6, "zh": 3, "fr": 1}
    assert languages["zh"]["share"] == pytest.approx(0.3)
    assert languages["zh"]["assistant_tokens_median"] == 4
    assert languages["en"]["user_tokens_median"] == len(ENGLISH.split()) + 1
    sources = {row["file"]: row for row in stats["sources"]}
    assert sources["en.jsonl"]["records"] == 6 and sources["en.jsonl"]["format"] == "alpaca"
    assert sources["zh.json"]["records"] == 3
    assert sources["unknown"]["records"] == 1
    assert stats["overview"]["languages"] == 3


@pytest.mark.parametrize(("instruction", "expected"), [
    ("Write a short poem about autumn.", ("write", "poem")),
    ("Please explain the theory of relativity", ("explain", "theory")),
    ("Can you please give me three examples", ("give", "examples")),
    ("I want you to act as a Linux terminal", ("act", None)),
    ("Imagine you are a pirate", ("imagine", None)),
    ("Summarize this article:\nThe article text", ("summarize", "article")),
    ("What is the capital of France?", (None, None)),
    ("The weather is nice", (None, None)),
])
def test_verb_object_heuristic(instruction, expected):
    assert verb_object(instruction) == expected


def test_first_chinese_word_skips_polite_openers():
    assert first_word_zh("请写一首关于秋天的诗") == "写"
    assert first_word_zh("帮我翻译这句话") == "翻译"
    assert first_word_zh("，。") is None


def test_verb_counts_in_stats():
    plan = {"Write a poem about the sea. " + ENGLISH: 5, "Please explain the theory below. " + ENGLISH: 3,
            "Explain your answer. " + ENGLISH: 1, "What is love? " + ENGLISH: 2}
    records = [make_record(conversation(f"{text} {i}", "ok")) for text, n in plan.items() for i in range(n)]
    records += [make_record(conversation("请写一首诗，描写秋天的景色和丰收的喜悦。", "好")) for _ in range(2)]
    english = stats_of(records)["instructions"]
    assert english["en"]["records"] == 11
    assert english["en"]["with_verb"] == 9
    assert english["en"]["distinct_verbs"] == 2
    assert english["en"]["top_verbs"] == [
        {"verb": "write", "count": 5, "objects": [{"object": "poem", "count": 5}]},
        {"verb": "explain", "count": 4,
         "objects": [{"object": "theory", "count": 3}, {"object": "answer", "count": 1}]},
    ]
    assert english["zh"] == {"records": 2, "top_first_words": [{"word": "写", "count": 2}]}


def test_reservoir_sample_is_seeded_and_bounded():
    records = [make_record(conversation(f"{ENGLISH} {i}", "ok")) for i in range(50)]
    first = [r["id"] for r in collect(records, count_whitespace_cjk, sample_size=5, seed=1)[1]]
    again = [r["id"] for r in collect(records, count_whitespace_cjk, sample_size=5, seed=1)[1]]
    assert len(first) == len(set(first)) == 5 and first == again


@pytest.fixture()
def curate_folder(tmp_path: Path) -> Path:
    """What `oid curate` writes: kept.jsonl, rejects.jsonl, stats.json, recipe.yaml (numbers consistent)."""
    folder = tmp_path / "curated"
    # English answers: a record's language is its answer's (oidkit.core.language)
    kept = [make_record(conversation(f"Write a story about dragons. {ENGLISH} {i}", words(20, "the")),
                        source={"file": "in.jsonl", "format": "sharegpt", "index": i}) for i in range(12)]
    dropped_short = [make_record(conversation("hi", "yo")) for _ in range(3)]
    dropped_dup = [kept[0]] * 5
    write_jsonl(folder / "kept.jsonl", kept)
    write_jsonl(folder / "rejects.jsonl",
                [make_reject(r, stage="curate", operator="heuristics", reason="too_short", value=2)
                 for r in dropped_short]
                + [make_reject(r, stage="curate", operator="exact_dedup", reason="duplicate", value=kept[0]["id"])
                   for r in dropped_dup])
    operators = [
        {"name": "heuristics", "op": "heuristics", "in": 20, "out": 17, "dropped": 3, "modified": 0,
         "seconds": 0.1, "reasons": {"too_short": 3}, "extra": {}},
        {"name": "exact_dedup", "op": "exact_dedup", "in": 17, "out": 12, "dropped": 5, "modified": 0,
         "seconds": 0.1, "reasons": {"duplicate": 5}, "extra": {}},
    ]
    stats = {"input": {"paths": ["in.jsonl"], "records": 20},
             "output": {"records": 12, "path": str(folder / "kept.jsonl"), "paths": [str(folder / "kept.jsonl")]},
             "engine": "local", "seconds": 0.3, "operators": operators}
    (folder / "stats.json").write_bytes(orjson.dumps(stats))
    (folder / "recipe.yaml").write_text("input: in.jsonl\nsteps:\n  - op: heuristics\n  - op: exact_dedup\n")
    return folder


def test_the_rejects_shard_set_of_a_ray_run_is_found_through_its_stats(curate_folder, tmp_path):
    rejects = list(read_jsonl(curate_folder / "rejects.jsonl"))
    (curate_folder / "rejects.jsonl").unlink()  # a Ray run writes rejects-00000.jsonl, ... (named in stats.json)
    shards = [curate_folder / "rejects-00000.jsonl", curate_folder / "rejects-00001.jsonl"]
    write_jsonl(shards[0], rejects[:3])
    write_jsonl(shards[1], rejects[3:])
    stats = orjson.loads((curate_folder / "stats.json").read_bytes())
    stats["output"]["rejects_paths"] = [str(path) for path in shards]
    (curate_folder / "stats.json").write_bytes(orjson.dumps(stats))
    on_disk = build_report(curate_folder, tmp_path / "report")
    assert on_disk["rejects"]["total"] == 8


def test_curate_folder_gives_funnel_rejects_and_card(curate_folder, tmp_path):
    out = tmp_path / "report"
    stats = build_report(curate_folder, out, license="cc-by-4.0", title="Dragons")
    on_disk = orjson.loads((out / "stats.json").read_bytes())
    assert on_disk == orjson.loads(orjson.dumps(stats))
    funnel = on_disk["funnel"]
    assert (funnel["from"], funnel["input"], funnel["output"]) == ("stats", 20, 12)
    assert [(s["name"], s["in"], s["out"], s["reasons"]) for s in funnel["steps"]] == [
        ("heuristics", 20, 17, {"too_short": 3}), ("exact_dedup", 17, 12, {"duplicate": 5})]
    assert on_disk["rejects"]["total"] == 8
    assert {(r["operator"], r["reason"]): r["count"] for r in on_disk["rejects"]["by_reason"]} == {
        ("heuristics", "too_short"): 3, ("exact_dedup", "duplicate"): 5}
    assert on_disk["overview"]["records"] == 12 and on_disk["warnings"] == []
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "funnel.png", "languages.png", "tokens.png", "turns.png", "verbs.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in (out / "figures").iterdir())

    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "cc-by-4.0" and front["language"] == ["en"] and front["pretty_name"] == "Dragons"
    assert front["size_categories"] == ["n<1K"]
    assert front["configs"][0]["data_files"][0]["path"] == "data/kept.jsonl"
    assert "- op: exact_dedup" in card and "| heuristics | 20 | 17 | 3 | too_short: 3 |" in card
    assert "not deduplicated" not in card and "not scrubbed" in card


def test_the_card_folder_loads_with_datasets_and_shows_skipped_work(curate_folder, tmp_path):
    """The card sits beside the data it describes: `datasets.load_dataset(report folder)` gives the kept records."""
    datasets = pytest.importorskip("datasets")
    stats = orjson.loads((curate_folder / "stats.json").read_bytes())
    stats["operators"][1]["notes"] = ["benchmark gsm8k skipped: no file at /nowhere/gsm8k_test.jsonl"]
    (curate_folder / "stats.json").write_bytes(orjson.dumps(stats))
    out = tmp_path / "report"
    build_report(curate_folder, out)
    kept = curate_folder / "kept.jsonl"
    assert (out / "data" / "kept.jsonl").samefile(kept) and kept.stat().st_nlink == 2  # linked, not copied
    loaded = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))  # not ~/.cache
    assert loaded["id"] == [orjson.loads(line)["id"] for line in kept.open("rb")]
    card = (out / "README.md").read_text()
    assert "exact_dedup: benchmark gsm8k skipped: no file at /nowhere/gsm8k_test.jsonl" in card
    assert "benchmark gsm8k skipped: no file at /nowhere" in (out / "report.html").read_text()
    build_report(curate_folder, out)  # again: the link is reused, not doubled
    assert kept.stat().st_nlink == 2


def test_funnel_rebuilt_from_rejects_alone(curate_folder, tmp_path):
    stats = build_report(curate_folder / "kept.jsonl", tmp_path / "r", rejects=curate_folder / "rejects.jsonl")
    funnel = stats["funnel"]
    assert (funnel["from"], funnel["input"], funnel["output"]) == ("rejects", 20, 12)
    steps = [(s["name"], s["in"], s["out"]) for s in funnel["steps"]]
    assert steps == [("heuristics", 20, 17), ("exact_dedup", 17, 12)]


def test_mismatched_stats_give_a_warning(curate_folder, tmp_path):
    other = tmp_path / "other.jsonl"
    write_jsonl(other, list(read_jsonl(curate_folder / "kept.jsonl"))[:4])
    stats = build_report(other, tmp_path / "r", curate_stats=curate_folder / "stats.json")
    assert stats["warnings"] and "12" in stats["warnings"][0]


@pytest.mark.parametrize(("records", "category"), [(999, "n<1K"), (1000, "1K<n<10K"), (17_600, "10K<n<100K")])
def test_size_category(records, category):
    assert size_category(records) == category


class Resources(HTMLParser):
    """Collects every src/href attribute value and every tag name of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href")]


def test_html_is_self_contained_and_escapes_record_text(tmp_path):
    hostile = ('Write a page with <script src="https://cdn.example.com/x.js"></script> and '
               '<img src="http://example.com/a.png"> and <a href="//cdn.example.org/y">link</a>. ' + ENGLISH)
    answer = "See the documentation at https://example.com/docs for the whole story."  # English: the answer decides
    records = [make_record(conversation(hostile, answer)) for _ in range(3)]
    write_jsonl(tmp_path / "data.jsonl", records)
    write_jsonl(tmp_path / "rejects.jsonl", [make_reject(hostile, stage="ingest", operator="read", reason="bad_json")])
    build_report(tmp_path / "data.jsonl", tmp_path / "out", rejects=tmp_path / "rejects.jsonl")
    page = (tmp_path / "out" / "report.html").read_text()
    parser = Resources()
    parser.feed(page)
    assert parser.urls and all(url.startswith(("data:", "#")) for url in parser.urls), parser.urls
    assert "script" not in parser.tags and "a" in parser.tags
    assert "&lt;script src=&#34;https://cdn.example.com/x.js&#34;&gt;" in page
    assert page.count('src="data:image/png;base64,') == 5


def test_cli_report_and_errors(curate_folder, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(curate_folder), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.html", "README.md", "stats.json", "figures",
                                                             "data"}
    with pytest.raises(ConfigError, match="holds the input"):
        build_report(curate_folder, curate_folder)
    with pytest.raises(InputError, match="not found"):
        build_report(tmp_path / "missing.jsonl", tmp_path / "x")
    with pytest.raises(InputError, match="line 1"):
        build_report(curate_folder / "kept.jsonl", tmp_path / "x", rejects=curate_folder / "kept.jsonl")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="operators"):
        build_report(curate_folder / "kept.jsonl", tmp_path / "x", curate_stats=tmp_path / "bad.json")


def test_tokenizer_lengths_match_transformers(tiny_model_path, tmp_path):
    from transformers import AutoTokenizer

    texts = ["Hello world, this is a test.", "写一首诗", "x " * 50]
    write_jsonl(tmp_path / "d.jsonl", [make_record(conversation(t, t[::-1])) for t in texts])
    stats = build_report(tmp_path / "d.jsonl", tmp_path / "out", tokenizer=str(tiny_model_path))
    reference = AutoTokenizer.from_pretrained(tiny_model_path)
    user = [len(reference(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert stats["tokens"]["user"]["total"] == sum(user) and stats["tokens"]["user"]["max"] == max(user)
    assert stats["tokenizer"] == Path(tiny_model_path).name


def test_report_does_not_import_torch():
    code = ("import sys, oidkit.report.build, oidkit.report.plots; "
            "sys.exit(1 if 'torch' in sys.modules or 'transformers' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_unloadable_tokenizer_is_a_user_error(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tokenizer.json").write_text("{not json")
    with pytest.raises(OidError, match="cannot load a fast tokenizer"):
        token_counter(str(tmp_path / "model"))
