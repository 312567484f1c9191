"""Applications: per-item task metrics, each app's ingest on its real files, the pipeline."""

from __future__ import annotations

import pytest

from oidkit.evaluate.task_metrics import multi_reference_rouge, score_task, slot_mention


def test_slot_mention_on_crafted_turns():
    values = ["Sunnyvale", "7 pm"]
    assert slot_mention("I booked a table in sunnyvale for 7 PM.", values) == 1.0
    assert slot_mention("I booked a table for 7 pm.", values) == 0.5
    assert slot_mention("Which city would you like?", values) == 0.0
    assert slot_mention("Booked for ７ pm in SUNNYVALE", values) == 1.0  # full-width digits fold (NFKC)
    assert slot_mention("Anything else?", []) is None  # a turn acting on no values is not scored
    records = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "In Sunnyvale."}],
                "meta": {"slot_values": ["Sunnyvale"]}},
               {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Anything else?"}],
                "meta": {"slot_values": []}}]
    scores = score_task("service", records, ["Sunnyvale it is.", "Nothing."])["service"]["per_item"]
    assert scores["slot_mention"] == [1.0] and len(scores["rougeL"]) == 2


def test_multi_reference_rouge_averages_over_references():
    same = multi_reference_rouge("the cat sat", ["the cat sat", "dogs bark loudly"])
    assert same["rouge1"] == pytest.approx(0.5) and same["rougeL"] == pytest.approx(0.5)
    assert multi_reference_rouge("猫坐着", ["猫坐着"])["rouge2"] == pytest.approx(1.0)  # CJK characters are tokens


@pytest.mark.real
def test_translate_ingest_on_the_real_wmt_files(shared_data):
    from oidkit.apps import translate
    from oidkit.apps.pipeline import app_settings

    files = {k: shared_data / v for k, v in app_settings("translate")["sources"].items()}
    built = translate.build(files, {"train": 50, "test_zh_en": 20, "test_en_zh": 10}, seed=0)
    assert [s.rows for s in built.sources] == [1948, 1002, 1875]
    assert len(built.train) == 50 and len(built.test) == 30
    held_out = [r for r in built.test if r["meta"]["test_set"] == "wmt21_en_zh_heldout"]
    assert [r["source"]["line"] for r in held_out] == list(range(993, 1003))  # the last lines, a contiguous block
    train_lines = {(r["meta"]["test_set"], r["source"]["line"]) for r in built.train}
    assert not train_lines & {("wmt21_en_zh", line) for line in range(993, 1003)}
    first = held_out[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"] and "翻译成中文" in first[0]["content"]


@pytest.mark.real
def test_service_ingest_on_the_real_sgd_files(shared_data):
    from oidkit.apps import service

    files = {"train": shared_data / "apps/dialogue/sgd/train", "test": shared_data / "apps/dialogue/sgd/test"}
    built = service.build(files, {"train": None, "test": 300, "history": 4}, seed=0)
    # one SGD test dialogue (dialogues_003, index 55) has a SYSTEM turn with an empty utterance: rejected
    assert [(s.rows, s.records) for s in built.sources] == [(640, 640), (384, 383)]
    assert built.sources[1].rejected == {"bad_turn": 1} and built.rejects[0]["source"]["index"] == 55
    assert len(built.train) == 640 and len(built.test) == 300
    for item in built.test:
        roles = [m["role"] for m in item["messages"]]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "assistant" and len(roles) <= 6
    with_values = [r for r in built.test if r["meta"]["slot_values"]]
    assert len(with_values) > 100
    # the values a turn acts on appear in its reference utterance far more often than not
    mentioned = [slot_mention(r["messages"][-1]["content"], r["meta"]["slot_values"]) for r in with_values]
    assert sum(mentioned) / len(mentioned) > 0.8


@pytest.mark.real
def test_summarise_ingest_on_the_real_dialogsum_files(shared_data):
    from oidkit.apps import summarise

    files = {"train": shared_data / "apps/summarisation/dialogsum.train.jsonl",
             "test": shared_data / "apps/summarisation/dialogsum.test.jsonl"}
    built = summarise.build(files, {"train": 100, "test": 200}, seed=0)
    train, test = built.sources
    assert (test.rows, test.records) == (500, 500)
    assert all(len(r["meta"]["references"]) == 3 for r in built.test) and len(built.test) == 200
    assert train.records == train.rows >= 12459 and len(built.train) == 100


@pytest.mark.real
def test_translate_runs_end_to_end_with_a_tiny_model(shared_data, tiny_model_path, tmp_path):
    from oidkit.apps.pipeline import run_app
    from oidkit.core.app_prompt import read_app_prompt

    report = run_app("translate", quick=True, out=tmp_path / "app", model=str(tiny_model_path), log=lambda _: None,
                     overrides=["sizes.quick.train=40", "sizes.quick.test_zh_en=6", "sizes.quick.test_en_zh=4",
                                "train_quick.train.max_steps=2", "max_new_tokens=4", "shots=1"])
    curate = report["curate"]
    assert curate["in"] == 40 and curate["kept"] == sum(curate["splits"].values())
    rejected = sum(sum(step["reasons"].values()) for step in curate["operators"])
    assert curate["kept"] + rejected == curate["in"]  # written + rejected = read
    table = report["results"]["wmt22_zh_en"]["metrics"]["chrf_sentence"]
    assert table["n"] == 6 and set(table["tuned - base"]) == {"diff", "low", "high", "excludes_zero"}
    assert report["results"]["wmt21_en_zh_heldout"]["metrics"]["bleu_sentence"]["n"] == 4
    assert "翻译" in read_app_prompt(tmp_path / "app" / "model")
    markdown = (tmp_path / "app" / "report.md").read_text()
    assert "| chrf_sentence | 6 |" in markdown and "## Five examples" in markdown


def test_app_list_and_unknown_app():
    from typer.testing import CliRunner

    from oidkit.cli import app

    listed = CliRunner().invoke(app, ["app", "list"])
    assert listed.exit_code == 0 and "translate" in listed.output and "slot_mention" in listed.output
    from oidkit.apps.pipeline import app_settings
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="choose one of service, summarise, translate"):
        app_settings("chat")
