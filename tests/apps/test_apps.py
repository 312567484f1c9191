"""Applications: per-item task metrics, each app's ingest on its real files, the pipeline."""

from __future__ import annotations

import pytest
import torch

from oidkit.apps.pipeline import SYSTEMS
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
    from oidkit.apps.pipeline import app_settings

    files = {k: shared_data / v for k, v in app_settings("service")["sources"].items()}
    sizes = {"train": None, "test": 300, "history": 4, "crosswoz_test_dialogues": 100, "crosswoz_train": 0,
             "crosswoz_test": 0}
    built = service.build(files, sizes, seed=0)
    # one SGD test dialogue (dialogues_003, index 55) has a SYSTEM turn with an empty utterance: rejected
    assert [(s.rows, s.records) for s in built.sources] == [(640, 640), (384, 383), (500, 500)]
    assert built.sources[1].rejected == {"bad_turn": 1} and built.rejects[0]["source"]["index"] == 55
    assert len(built.train) == 640 and len(built.test) == 300
    for item in built.test:
        roles = [m["role"] for m in item["messages"]]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "assistant" and len(roles) <= 6
    with_values = [r for r in built.test if r["meta"]["slot_values"]]
    assert len(with_values) > 100
    # the model is given what the reference turn acts on: every value is in the service result line before it
    for item in with_values:
        result_line = item["messages"][-2]["content"].rsplit("Service result: ", 1)[1]
        assert all(value in result_line for value in item["meta"]["slot_values"])
    # the values a turn acts on are said in its reference utterance (booleans and intent names are left out)
    mentioned = [slot_mention(r["messages"][-1]["content"], r["meta"]["slot_values"]) for r in with_values]
    assert sum(mentioned) / len(mentioned) > 0.99
    assert not {"True", "False"} & {v for r in built.test for v in r["meta"]["slot_values"]}


def test_slot_mention_on_crafted_chinese_turns():
    values = ["讲礼驴肉馆", "68元"]
    assert slot_mention("推荐您去人均消费68元的讲礼驴肉馆用餐。", values) == 1.0
    assert slot_mention("推荐您去讲礼驴肉馆。", values) == 0.5
    assert slot_mention("请问您想吃什么菜？", values) == 0.0
    assert slot_mention("讲礼驴肉馆人均６８元", values) == 1.0  # full-width digits fold (NFKC)
    # spacing and punctuation differ between the act's value and how the turn says it
    assert slot_mention("营业时间是周一至周日全天。", ["周一至周日 全天"]) == 1.0
    assert slot_mention("电话是010-67389898、010-67383333。", ["010-67389898 010-67383333"]) == 1.0
    assert slot_mention("去北京全聚德（王府井店）吧", ["北京全聚德(王府井店)"]) == 1.0
    assert slot_mention("去北京全聚德（前门店）吧", ["北京全聚德(王府井店)"]) == 0.0


def test_crosswoz_act_values_keep_what_a_turn_says():
    from oidkit.apps.service import crosswoz_turn_acts

    def act_values(acts):
        said = crosswoz_turn_acts(acts)
        return None if said is None else said["values"]

    acts = [["Inform", "餐馆", "名称", "讲礼驴肉馆"], ["NoOffer", "餐馆", "none", "none"],
            ["Inform", "酒店", "酒店设施-会议室", "是"], ["Inform", "酒店", "周边景点", "无"],
            ["Recommend", "景点", "名称", "故宫"], ["Inform", "餐馆", "名称", "讲礼驴肉馆"]]
    assert act_values(acts) == ["讲礼驴肉馆", "故宫"]  # yes/no, "none found" and repeats are not values said
    assert act_values([]) == []
    assert act_values([["Inform", "餐馆", "名称"]]) is None and act_values("Inform") is None


def test_service_result_lines_carry_the_acts_of_the_next_assistant_turn():
    from oidkit.apps.service import crosswoz_turn_acts, sgd_turn_acts, with_results

    def sgd_acts(turn):
        return sgd_turn_acts(turn)["acts"]

    turn = {"frames": [{"actions": [
        {"act": "OFFER", "slot": "restaurant_name", "values": ["Little Hunan"]},
        {"act": "OFFER", "slot": "time", "values": ["8 pm", "8:30 pm"]},
        {"act": "REQUEST", "slot": "date", "values": []},
        {"act": "REQ_MORE", "slot": "", "values": []}]}]}
    assert sgd_acts(turn) == "OFFER restaurant_name = Little Hunan; OFFER time = 8 pm, 8:30 pm; REQUEST date; REQ_MORE"
    assert sgd_acts({"frames": []}) == ""
    spoken = {"frames": [{"actions": [
        {"act": "INFORM", "slot": "price_range", "values": ["moderate"]},
        {"act": "INFORM", "slot": "has_vegetarian_options", "values": ["False"]},
        {"act": "OFFER_INTENT", "slot": "intent", "values": ["ReserveRestaurant"]},
        {"act": "CONFIRM", "slot": "city", "values": ["San Jose", "moderate"]}]}]}
    assert sgd_turn_acts(spoken)["values"] == ["moderate", "San Jose"]  # booleans and intent names are not said
    acts = [["Inform", "餐馆", "名称", "讲礼驴肉馆"], ["NoOffer", "餐馆", "none", "none"],
            ["General", "bye", "none", ""]]
    assert crosswoz_turn_acts(acts)["acts"] == "Inform 餐馆 名称 = 讲礼驴肉馆; NoOffer 餐馆; General bye"
    turns = [{"role": "user", "content": "Hi", "acts": ""},
             {"role": "assistant", "content": "Where?", "acts": "REQUEST city"},
             {"role": "user", "content": "SF", "acts": ""},
             {"role": "assistant", "content": "Bye", "acts": ""}]
    # a user turn ends with the result of the reply after it; a reply with no acts adds nothing
    assert with_results(turns, "en") == [{"role": "user", "content": "Hi\n\nService result: REQUEST city"},
                                         {"role": "assistant", "content": "Where?"},
                                         {"role": "user", "content": "SF"}, {"role": "assistant", "content": "Bye"}]
    assert with_results(turns[:2], "zh")[0]["content"] == "Hi\n\n服务结果：REQUEST city"


def crosswoz_slice(shared_data, folder, dialogues: int):
    """The first ``dialogues`` dialogues of the real CrossWOZ file plus one without messages, zipped as the
    source ships it (one JSON object)."""
    import json
    import zipfile

    with zipfile.ZipFile(shared_data / "apps/dialogue/crosswoz_val.json.zip") as source:
        everything = json.loads(source.read("val.json"))
    part = dict(list(everything.items())[:dialogues]) | {"broken": {"goal": []}}
    path = folder / "crosswoz_slice.json.zip"
    with zipfile.ZipFile(path, "w") as target:
        target.writestr("val.json", json.dumps(part, ensure_ascii=False))
    return path


@pytest.mark.real
def test_crosswoz_ingest_on_a_slice_of_the_real_file(shared_data, tmp_path):
    from oidkit.apps import service

    files = {"train": [], "test": [], "crosswoz": crosswoz_slice(shared_data, tmp_path, 30)}
    sizes = {"train": None, "test": 0, "history": 4, "crosswoz_test_dialogues": 10, "crosswoz_train": None,
             "crosswoz_test": 40}
    built = service.build(files, sizes, seed=0)
    crosswoz = built.sources[2]
    assert (crosswoz.rows, crosswoz.records, dict(crosswoz.rejected)) == (31, 30, {"missing_field": 1})
    assert built.rejects[0]["source"]["dialogue"] == "broken"
    assert len(built.train) == 20 and len(built.test) == 40
    # a seeded split of dialogues: no held-out dialogue is trained on
    trained = {r["id"].removeprefix("crosswoz-") for r in built.train}
    tested = {r["id"].removeprefix("crosswoz-").rsplit("-", 1)[0] for r in built.test}
    assert len(tested) > 1 and not trained & tested and len(trained | tested) <= 30
    item = built.test[0]
    assert item["meta"]["test_set"] == "crosswoz" and item["meta"]["direction"] == "zh"
    assert item["messages"][0]["content"] == service.CROSSWOZ_PROMPT and "客服" in service.CROSSWOZ_PROMPT
    assert [m["role"] for m in item["messages"]][1] == "user" and item["messages"][-1]["role"] == "assistant"
    with_values = [r for r in built.test if r["meta"]["slot_values"]]
    mentioned = [slot_mention(r["messages"][-1]["content"], r["meta"]["slot_values"]) for r in with_values]
    assert len(with_values) > 20 and sum(mentioned) / len(mentioned) > 0.9
    again = service.build(files, sizes, seed=0)
    assert [r["id"] for r in again.test] == [r["id"] for r in built.test]


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
    generation = report["generation"]
    assert generation["dtype_setting"] == "auto" and generation["dtype"] in ("bfloat16", "float32")
    assert f"dtype {generation['dtype']}, shots 1, max_new_tokens 4, batch_size 16 (recipe dtype: auto)" in markdown


@pytest.mark.real
def test_service_runs_end_to_end_with_a_tiny_model(shared_data, tiny_model_path, tmp_path):
    from oidkit.apps.pipeline import run_app

    zipped = crosswoz_slice(shared_data, tmp_path, 20)
    report = run_app("service", quick=True, out=tmp_path / "app", model=str(tiny_model_path), log=lambda _: None,
                     overrides=[f"sources.crosswoz={zipped}", "sizes.quick.train=20", "sizes.quick.test=6",
                                "sizes.quick.crosswoz_test_dialogues=5", "sizes.quick.crosswoz_train=10",
                                "sizes.quick.crosswoz_test=4", "split.train=0.7", "split.validation=0.3",
                                "train_quick.train.max_steps=2", "max_new_tokens=4",
                                "shots=1"])
    assert report["ingest"] == {"train_records": 30, "test_items": 10, "rejected": 2}  # SGD 1, CrossWOZ 1
    assert set(report["results"]) == {"service", "crosswoz"}  # SGD and CrossWOZ are reported apart
    assert report["results"]["crosswoz"]["metrics"]["rougeL"]["n"] == 4
    assert report["primary_result"] is report["results"]["service"]["metrics"]["slot_mention"]
    markdown = (tmp_path / "app" / "report.md").read_text()
    assert "### crosswoz" in markdown and "| crosswoz | 21 | 20 | missing_field 1 |" in markdown


def test_app_list_and_unknown_app():
    from typer.testing import CliRunner

    from oidkit.cli import app

    listed = CliRunner().invoke(app, ["app", "list"])
    assert listed.exit_code == 0 and "translate" in listed.output and "slot_mention" in listed.output
    from oidkit.apps.pipeline import app_settings
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="choose one of service, summarise, translate"):
        app_settings("chat")


@pytest.mark.parametrize(("override", "message"), [
    ("shots=abc", "shots is a count, a whole number >= 0, not 'abc'"),
    ("nosuch.key=3", "no setting 'nosuch'; keys here: app, batch_size"),
    ("sizes.quick.tets=3", "no setting 'sizes.quick.tets'"),
    ("sizes.quick.test=-1", "a whole number >= 0, not -1"),
    ("batch_size=0", "a whole number >= 1, not 0"),
    ("sizes.quick.test=1.5", "not 1.5"),
    ("sources.train=3", "sources.train takes a str"),
    ("dtype=float16", "dtype is one of auto, bfloat16, float32, not 'float16'"),
])
def test_app_overrides_are_checked_before_any_work(override, message):
    from oidkit.apps.pipeline import app_settings
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        app_settings("service", [override])
    assert message in str(error.value)
    # what the recipes and tests use stays accepted: null (all) where the recipe has null, floats, paths, train.*
    settings = app_settings("service", ["sizes.full.train=null", "sizes.quick.crosswoz_train=10", "split.train=0.9",
                                        "sources.train=x/y", "train.lora.r=8", "decontaminate.ngram=20",
                                        "dtype=float32"])
    assert settings["sizes"]["quick"]["crosswoz_train"] == 10 and settings["train"]["lora"]["r"] == 8


def test_a_training_key_one_level_too_high_says_where_it_lives(tmp_path):
    """In an application the training config is the recipe's train section: train.max_steps is
    train.train.max_steps; the error says so before any work (no output folder is made). A value set there
    holds with --quick too, over the recipe's train_quick."""
    from oidkit.apps.pipeline import app_settings, training_config
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"max_steps(.|\n)*hint: .*train\.train\.max_steps=30"):
        training_config(app_settings("summarise", ["train.max_steps=30"]), True, tmp_path / "out", None)
    assert not (tmp_path / "out").exists()
    config = training_config(app_settings("summarise", ["train.train.max_steps=7"]), True, tmp_path / "out", None)
    assert config.train.max_steps == 7 and config.train.eval_every == 15  # train_quick's other keys still apply


@pytest.mark.parametrize(("setting", "native_bf16", "loaded"), [
    ("auto", True, "bfloat16"), ("auto", False, "float32"), ("float32", True, "float32"),
    ("bfloat16", False, "bfloat16")])
def test_the_three_systems_are_loaded_in_the_recipes_dtype(monkeypatch, setting, native_bf16, loaded):
    import oidkit.evaluate.run
    import oidkit.models
    from oidkit.apps.pipeline import app_settings, generate_all, generation_settings

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    asked = []
    monkeypatch.setattr(oidkit.models, "load_model",
                        lambda name, dtype, device: asked.append((name, dtype, device)) or ("m", "t"))
    monkeypatch.setattr(oidkit.evaluate.run, "generate_answers", lambda model, tok, prompts, **_: ["x"] * len(prompts))
    item = {"id": "0", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                    {"role": "assistant", "content": "a"}]}
    settings = app_settings("translate", [f"dtype={setting}", "shots=0"])
    generation = generation_settings(settings, "auto")
    assert generation["device"] == "cpu" and generation["dtype"] == loaded  # no GPU here: auto is the CPU
    outputs = generate_all(settings, generation, [item], [], "base", "tuned")
    assert asked == [("base", loaded, "cpu"), ("tuned", loaded, "cpu")] and outputs == {s: ["x"] for s in SYSTEMS}


def test_the_three_systems_generate_on_the_gpu_when_training_does(monkeypatch):
    from oidkit.apps.pipeline import app_settings, generation_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    generation = generation_settings(app_settings("translate"), "auto")
    assert (generation["device"], generation["dtype"]) == ("cuda", "float32")
    assert generation_settings(app_settings("translate", ["dtype=bfloat16"]), "cpu")["device"] == "cpu"


def test_missing_source_files_are_named_in_one_error_before_any_work(tmp_path, monkeypatch):
    from oidkit.apps.pipeline import run_app
    from oidkit.errors import InputError

    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match=r"translate: 6 of its 6 source files are not here: .*nowhere") as error:
        run_app("translate", quick=True, out=tmp_path / "app", log=lambda _: None)
    assert "OIDKIT_SHARED_DATA" in str(error.value) and not (tmp_path / "app" / "data").exists()


def test_a_bad_training_key_stops_an_app_run_before_any_work(tmp_path):
    from oidkit.apps.pipeline import run_app
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="lora"):
        run_app("service", quick=True, out=tmp_path / "app", overrides=["train.lora.rank=8"], log=lambda _: None)
    assert not (tmp_path / "app" / "data").exists()
