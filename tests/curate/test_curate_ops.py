"""Each curation operator on crafted records whose right answer is known by construction."""

from __future__ import annotations

import pytest

from oidkit.curate.base import REGISTRY
from oidkit.curate.ops import operator_class
from oidkit.curate.ops.heuristics import dup_line_char_ratio, dup_ngram_ratio, top_ngram_ratio
from oidkit.curate.ops.pii import cn_id_valid, luhn_valid, redact
from oidkit.records import make_record


def chat(user: str, assistant: str = "Sure, here is a complete and helpful answer to that.", **meta) -> dict:
    return make_record([{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], meta=meta)


def build(name: str, **params):
    op = operator_class(name)(operator_class(name).Config(**params))
    op.setup()
    return op


def resolve(op, records: list[dict]) -> dict:
    return op.resolve(op.keys(records), [r["id"] for r in records])


# --- normalise -------------------------------------------------------------------------------------------

def test_normalise_repairs_mojibake_html_and_whitespace_but_not_code():
    op = build("normalise")
    record = chat("Caf\u00c3\u00a9 au lait?  \n\n\n\n<div>Price &amp; size</div><br/>Small\u200b",
                  "Use:\n```html\n<div>&amp;</div>\n```\nDone.   ")
    new, counts = op.map(record)
    assert new["messages"][0]["content"] == "Café au lait?\n\nPrice & size\nSmall"
    assert new["messages"][1]["content"] == "Use:\n```html\n<div>&amp;</div>\n```\nDone."
    assert {"mojibake", "html", "whitespace"} <= set(counts)
    assert record["messages"][0]["content"].startswith("Caf\u00c3")  # the input record is not mutated


def test_normalise_returns_the_same_object_when_nothing_changes():
    op = build("normalise")
    record = chat("Hello there.", "Hi!")
    assert op.map(record) == (record, {}) and op.map(record)[0] is record


def test_normalise_nfkc_and_traditional_to_simplified():
    op = build("normalise", unicode="NFKC", traditional_to_simplified=True)
    new, counts = op.map(chat("這個問題ＡＢＣ１２３", "好的。"))
    assert new["messages"][0]["content"] == "这个问题ABC123"
    assert counts == {"unicode": 1, "traditional_to_simplified": 1}


# --- language --------------------------------------------------------------------------------------------

def test_language_keeps_listed_languages_and_names_the_dropped_one():
    op = build("language", keep=["en", "zh"])
    assert op.keep(chat("What is the capital of France? Please answer briefly.",
                        "The capital of France is Paris, a city on the Seine."))[0]
    assert op.keep(chat("请用一句话介绍一下北京这座城市。", "北京是中国的首都，历史悠久，文化灿烂。"))[0]
    keep, reason, value = op.keep(chat("Quelle est la capitale de la France ? Réponds en une phrase.",
                                       "La capitale de la France est Paris, une ville magnifique."))
    assert (keep, reason, value["language"], value["role"]) == (False, "language_not_kept", "fr", "user")


def test_language_does_not_judge_text_too_short_to_identify():
    assert build("language", keep=["en"], min_chars=20).keep(chat("Hola", "Sure, here is a complete answer."))[0]


def test_language_names_the_language_it_kept_a_record_for():
    op = build("language", keep=["en", "zh"])
    answer = ("Hello! I am happy to help. Tell me what you would like to talk about today, and I will do my "
              "best to give you a clear and useful answer.")
    assert op.keep(chat("hi", answer)) == (True, "", "en")  # "hi" alone reads as af or br
    chinese = chat("请用一句话介绍一下北京这座城市。", "北京是中国的首都，历史悠久，文化灿烂。")
    assert op.keep(chinese) == (True, "", "zh")
    # Roles in two kept languages: the answer's is the record's, however long the pasted text.
    assert op.keep(chat("请把这句谚语翻译成英文：冰冻三尺，非一日之寒。", answer)) == (True, "", "en")
    pasted = chat("请用中文总结下面这段文字：\n" + answer * 4, "用户想聊天，助手乐意帮忙并给出清楚有用的回答。")
    assert op.keep(pasted) == (True, "", "zh")  # the user's text is mostly English


def test_language_judges_roles_together_when_each_is_too_short():
    op = build("language", keep=["en", "zh"], min_chars=20)
    assert op.keep(chat("Reply with one word", "Okay.")) == (True, "", "en")
    keep, reason, value = op.keep(chat("Bonjour, ça va?", "Oui, très bien."))
    assert (keep, reason, value["role"], value["language"]) == (False, "language_not_kept", "user+assistant", "fr")
    assert op.keep(chat("hi", "Hello!")) == (True, "", "unknown")  # too little even together to guess


# --- heuristics ------------------------------------------------------------------------------------------

GOOD_ANSWER = ("Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. Plants capture light "
               "with chlorophyll in their leaves, split water, and use the energy to build glucose.")


@pytest.mark.parametrize(("record", "reason"), [
    (make_record([{"role": "user", "content": "Hello, how are you doing today?"}]), "too_few_turns"),
    (chat("Hi", "Ok"), "too_short"),
    (chat("$$$ %%% ^^^ &&& *** ((( )))", "### @@@ !!! ~~~ ||| +++ ==="), "low_alnum_ratio"),
    (chat("Explain photosynthesis in two sentences please.", "   "), "empty_response"),
    (chat("Write a loop in Python that prints numbers.", "Here it is:\n```python\nfor i in range(3):\n    print(i)"),
     "truncated_response"),
    (chat("Explain how photosynthesis works for a plant.", "Photosynthesis is the process by which plants and"),
     "truncated_response"),
    (chat("Tell me your opinion about the election.",
          "As an AI language model, I do not have personal opinions about elections."), "refusal"),
    (chat("你对这次选举有什么看法？", "作为一个人工智能语言模型，我没有个人观点。"), "refusal"),
    (chat("Repeat after me: the quick brown fox jumps over the lazy dog.",
          "Repeat after me: the quick brown fox jumps over the lazy dog."), "instruction_copy"),
    (chat("Write a poem about the sea, please.", "\n".join(["The waves are crashing on the shore tonight."] * 12)),
     "repeated_lines"),
])
def test_heuristics_rule_and_reason(record, reason):
    keep, got, _ = build("heuristics").keep(record)
    assert (keep, got) == (False, reason)


def test_heuristics_keeps_a_good_record_and_rules_switch_off():
    op = build("heuristics")
    assert op.keep(chat("Explain photosynthesis in two sentences.", GOOD_ANSWER)) == (True, "", None)
    lenient = build("heuristics", drop_refusals=False)
    assert lenient.keep(chat("What do you think about this election?",
                             "As an AI language model, I do not have personal opinions."))[0]


@pytest.mark.parametrize(("answer", "truncated"), [
    ("Tips:\n- Improve your sleep quality and diet", False),  # a list item needs no full stop
    ("建议：\n3. 多喝水，保持充足的睡眠和适量运动", False),
    ("With love,\nDimaz", False),  # a short last line: a signature
    ("Photosynthesis is the process by which plants and", True),
    ("光合作用是植物利用光能把二氧化碳和水转化为有机物并且释放出氧气的过程，同时它还", True),
    ("Run this:\n```bash\nls -la\n```\nThen check the output.", False),
    # false positives found in the real ShareGPT rejects: hashtags, signatures, verse, quiz answers
    ("Book your consultation today! #remodeling #HomeDesign #FrankfortIL", False),
    ("Thank you.\n\nSincerely,\n[Your Name]\nNorth America Telugu Society", False),
    ("And causing strife\nIs not worth the while\nSo let's just accept the doody pile", False),
    ("Question 4: A) Oxygen\n\nQuestion 5: A) Glycolysis", False),
    ("Which is a module?\nA) A file of functions\nB) A type of programming language\nC) A way to debug code", False),
    # ... while a short cut line under a heading or after code is still a cut paragraph
    ("### Unguided Transmission Media\n\nUnguided transmission media use wireless signals to", True),
    ("Conclusion:\n\nThis SRD outlines the functional and non-functional", True),
    ("```python\npass\n```\nThis class defines the", True),
])
def test_truncated_answer_detection(answer, truncated):
    from oidkit.curate.ops.heuristics import looks_truncated

    assert looks_truncated(answer) is truncated


LONG_SOURCE = ("The committee met on Tuesday to review the budget for the coming year and agreed after a long "
               "debate that the money for schools roads and hospitals would rise while spending on the new "
               "stadium would wait until the next election had been held in the spring")


@pytest.mark.parametrize(("request_text", "answer", "truncated"), [
    # WMT translation pairs whose reference is a headline or byline: complete without a full stop
    ("Salmonella outbreak sickens 212 people in 23 states", "23 个州爆发沙门氏菌疫情，已致 212 人感染", False),
    ("跨省游恢复 全国首趟跨省动车旅游专列开行-新华网",
     "Inter-province travel resumes, nation’s first high-speed train tour launches - Xinhuanet", False),
    ("美媒揭开了美方无端要求中国关闭驻休斯敦总领馆的真相",
     "U.S. Media Unveils U.S. Unwarranted Demand to Shut Down Chinese Consulate General In Huston", False),
    ("2020-07-26 14:40:44 来源：央视网 作者：朱延静 责任编辑：朱延静",
     "2020-07-26 14:40:44 Source:cctv.com Author:Zhu Yanjing Editor: Zhu Yanjing", False),
    ("No, that's all. Thank you.", "Have a wonderful day ahead", False),  # a closing: short
    # ... while cuts stay cuts: on a word a sentence cannot end on, far shorter than the text it translates,
    # a request that is a sentence, two sentences on the line, an open bracket, a trailing comma
    ("Kanye West issues public apology to wife Kim Kardashian after revealing marriage details",
     "Kanye West issues a public apology to his wife Kim Kardashian after", True),
    (LONG_SOURCE, "The committee met on Tuesday to review the budget for the coming year and agreed", True),
    ("Explain how photosynthesis works for a plant.",
     "Photosynthesis turns light and water into sugar inside the leaf cells of green plants", True),
    ("Write two lines about plants",
     "Plants need light. They turn it into sugar inside the leaves of every green plant", True),
    ("what does DPI mean", "DPI (dots per inch", True),
    ("Spain has so far seen more than 28,000 coronavirus deaths", "目前，西班牙已有超过 28,000 例死亡病例，", True),
    ("请介绍一下光合作用", "光合作用是植物利用光能把二氧化碳和水转化为有机物的过程，同时它还", True),
])
def test_truncation_spares_headlines_but_not_cuts(request_text, answer, truncated):
    from oidkit.curate.ops.heuristics import looks_truncated

    assert looks_truncated(answer, request_text) is truncated
    record = chat(request_text, answer)
    assert build("heuristics", min_chars=4).keep(record)[1] == ("truncated_response" if truncated else "")


def test_gopher_repetition_measures_on_known_text():
    assert dup_line_char_ratio("abc\nxyz\nabc\n") == pytest.approx(6 / 9)
    assert dup_line_char_ratio("one\ntwo\nthree") == 0
    words = ["aa", "bb"] * 5 + ["cccc"] * 2  # "aa bb" occurs 5 times: 20 of 28 characters
    assert top_ngram_ratio(words, 2) == pytest.approx(20 / 28)
    unique = [f"w{i}" for i in range(30)]
    assert dup_ngram_ratio(unique, 10) == 0
    assert dup_ngram_ratio(unique[:10] + unique[:10], 10) == 1.0


def test_heuristics_repeated_ngrams_drop_looping_answers():
    loop = " ".join(["the model keeps saying the same sentence again and again."] * 8)
    keep, reason, value = build("heuristics").keep(chat("Tell me a story about a dragon.", loop))
    assert not keep and reason in {"repeated_2gram", "repeated_10grams"} and value > 0.2


# --- exact dedup -----------------------------------------------------------------------------------------

def test_exact_dedup_folds_case_width_and_spaces_and_names_the_kept_copy():
    records = [chat("What is 2+2?", "4."), chat("what  is 2+2?", "4."), chat("ＷＨＡＴ IS 2+2?", "4."),
               chat("What is 3+3?", "6.")]
    decisions = resolve(build("exact_dedup"), records)
    assert sorted(decisions) == [1, 2]
    assert {d.duplicate_of for d in decisions.values()} == {records[0]["id"]}


def test_exact_dedup_by_instruction_keeps_the_longest():
    records = [chat("Name a fruit.", "Apple."), chat("Name a fruit.", "Banana, a long yellow fruit rich in potassium.")]
    assert list(resolve(build("exact_dedup", field="instruction"), records)) == [1]
    decisions = resolve(build("exact_dedup", field="instruction", keep="longest"), records)
    assert list(decisions) == [0] and decisions[0].duplicate_of == records[1]["id"]


# --- near dedup ------------------------------------------------------------------------------------------

def words_doc(shared: int, own: int, tag: str) -> str:
    return " ".join([f"common{i}" for i in range(shared)] + [f"{tag}{i}" for i in range(own)])


def test_near_dedup_pairs_at_known_jaccard():
    # Unigram shingles make Jaccard a set count: A vs B share 90 of 110 words (0.82), A vs C 30 of 170 (0.18).
    a, b, c = words_doc(100, 0, "a"), words_doc(90, 10, "b"), words_doc(30, 70, "c")
    records = [chat(a, "x"), chat(b, "y"), chat(c, "z")]
    op = build("near_dedup", field="instruction", unit="word", ngram=1, threshold=0.7)
    decisions = resolve(op, records)
    assert list(decisions) == [1]
    assert decisions[1].duplicate_of == records[0]["id"]
    assert decisions[1].value == pytest.approx(90 / 110, abs=0.1)


def test_near_dedup_chinese_pair_by_character_shingles():
    text = "人工智能正在改变我们的生活方式，从医疗诊断到自动驾驶，从语音助手到智能推荐，它已经渗透到社会的方方面面。"
    edited = text.replace("改变", "重塑").replace("方方面面", "各个角落")
    other = "今天的天气非常好，我们一起去公园散步吧，顺便买一些新鲜的水果和蔬菜回家做晚饭。"
    records = [chat(text, "好"), chat(edited, "好"), chat(other, "好")]
    decisions = resolve(build("near_dedup", field="instruction", ngram=3, threshold=0.5), records)
    assert list(decisions) == [1] and decisions[1].reason == "near_duplicate"


def test_near_dedup_cluster_keeps_one_representative_chosen_by_keep():
    base = words_doc(100, 0, "a")
    records = [chat(base, "short"), chat(base + " extra1", "a much longer answer than the first one"),
               chat(base + " extra2", "mid answer")]
    first = resolve(build("near_dedup", field="instruction", unit="word", ngram=1, threshold=0.8), records)
    assert sorted(first) == [1, 2]
    longest = resolve(build("near_dedup", field="instruction", unit="word", ngram=1, threshold=0.8,
                            keep="longest"), records)
    assert sorted(longest) == [0, 2] and longest[0].duplicate_of == records[1]["id"]


def test_near_dedup_rejects_inconsistent_bands_and_rows():
    config = operator_class("near_dedup").Config
    with pytest.raises(ValueError, match="bands \\* rows"):
        config(bands=12, rows=11, num_perm=128)  # 132 values from a 128-value signature
    with pytest.raises(ValueError, match="both bands and rows"):
        config(bands=16, num_perm=128)
    assert config(bands=9, rows=13, num_perm=128).bands == 9  # 117 <= 128, as datasketch chooses


# --- decontamination -------------------------------------------------------------------------------------

def test_decontaminate_drops_a_planted_gsm8k_question(shared_data, monkeypatch):
    import json

    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(shared_data))
    question = json.loads((shared_data / "gsm8k_test.jsonl").read_text().splitlines()[7])["question"]
    op = build("decontaminate", benchmarks=["gsm8k"])
    planted = chat(f"Please solve this for me step by step. {question}", "Let me think about it.")
    keep, reason, value = op.keep(planted)
    assert (keep, reason, value["benchmark"], value["item"]) == (False, "benchmark_overlap", "gsm8k", "7")
    assert value["ngram"] in question.lower().replace(",", "").replace(".", "")
    assert op.keep(chat("Write a haiku about autumn leaves falling in the quiet forest.", GOOD_ANSWER))[0]


def test_decontaminate_custom_chinese_benchmark_by_characters(tmp_path):
    item = "小明有三个苹果，小红给了他五个，他又吃掉了两个，请问小明现在有几个苹果？"
    (tmp_path / "bench.jsonl").write_text(json_line({"question": item, "id": "q1"}), encoding="utf-8")
    spec = {"name": "mine", "path": str(tmp_path / "bench.jsonl"), "fields": ["question"], "id_field": "id"}
    op = build("decontaminate", benchmarks=[spec])
    keep, _, value = op.keep(chat("题目：" + item[3:20] + "。谢谢", "好的"))
    assert not keep and (value["benchmark"], value["item"]) == ("mine", "q1")
    assert op.keep(chat("小明有三个橘子，请问一共有几个？", "三个。"))[0]


def test_decontaminate_unknown_benchmark_lists_the_known_ones():
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="gsm8k"):
        build("decontaminate", benchmarks=["nope"])


def json_line(row: dict) -> str:
    import json

    return json.dumps(row, ensure_ascii=False) + "\n"


# --- PII -------------------------------------------------------------------------------------------------

ALL_PII = ["email", "cn_id", "credit_card", "phone", "ip_address", "api_key"]


@pytest.mark.parametrize(("text", "expected", "kind"), [
    ("write to john.doe@example.com today", "write to <EMAIL> today", "email"),
    ("邮箱john@example.com谢谢", "邮箱<EMAIL>谢谢", "email"),
    ("电话13812345678", "电话<PHONE>", "phone"),
    ("call +86 138 1234 5678 now", "call <PHONE> now", "phone"),
    ("office (415) 555-2671", "office <PHONE>", "phone"),
    ("server 192.168.1.20.", "server <IP_ADDRESS>.", "ip_address"),
    ("v6 2001:db8::ff00:42:8329 ok", "v6 <IP_ADDRESS> ok", "ip_address"),
    ("card 4111 1111 1111 1111", "card <CREDIT_CARD>", "credit_card"),
    ("身份证11010519491231002X", "身份证<CN_ID>", "cn_id"),
    ("key sk-abcdefghijklmnopqrstuvwxyz123456", "key <API_KEY>", "api_key"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws <API_KEY>", "api_key"),
    # missed before
    ("call +33 1 23 45 67 89 today", "call <PHONE> today", "phone"),
    ("M: +44 (0)7792959309", "M: <PHONE>", "phone"),
    ("手机13800138000", "手机<PHONE>", "phone"),
    ("电话：+86 138 0013 8000。", "电话：<PHONE>。", "phone"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = <API_KEY>",
     "api_key"),
    ("联系邮箱：zhang.san@qq.com，谢谢", "联系邮箱：<EMAIL>，谢谢", "email"),
    ("hf token 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", "hf token <API_KEY>", "api_key"),
])
def test_pii_redacts_what_must_match(text, expected, kind):
    counts: dict = {}
    assert redact(text, ALL_PII, counts) == expected
    assert counts == {kind: 1}


@pytest.mark.parametrize("text", [
    "version 1.2.3.4.5", "999.1.1.1", "card 4111 1111 1111 1112", "id 110105194912310021", "in 2023 at 12:30:45",
    "std::vector<int>", "order 1234567890123", "pi 3.14159265358979", "isbn 978-3-16-148410-0", "on 2023-01-15",
    "a::b::c", "user@localhost",
    # redacted before: code, versions, file names, parcel and order numbers, hashes, placeholders
    "odd = a[1::2]", "x[10::3] and y[::2]", "version 1.2.3.4", "python-3.6.0.0.tar.gz", "tool_3.6.0.0-win64.zip",
    '"contentVersion": "1.0.0.0"', "see section 2.1.3.4", "PIN: 11-21-212-046-0000", "Debit,20230317D-14840620000",
    "tracking number 415-555-2671", "订单号 13812345678", "快递单号：138 0013 8000",
    "commit b2da58719063502542f4c7ca2031da4f99510cad", "token xoxp-your-token-here", "icon@2x.png",
    "mean 0.356445562281524", "ID 510107196509126831 fails its check", "编号 911243048505176722",
    "http://127.0.0.1:8000/v1", "bind 0.0.0.0", "netmask 255.255.255.0",
    "digest wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # 40 base64 characters far from any word "secret"
])
def test_pii_leaves_what_must_not_match(text):
    counts: dict = {}
    assert redact(text, ALL_PII, counts) == text and counts == {}


def test_pii_aws_key_id_and_secret_on_one_line_are_both_redacted():
    counts: dict = {}
    text = "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert redact(text, ALL_PII, counts) == "<API_KEY> <API_KEY>" and counts == {"api_key": 2}


def test_pii_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert cn_id_valid("11010519491231002X") and not cn_id_valid("110105194913310028")  # month 13


def test_pii_mapper_counts_per_type_and_respects_types():
    op = build("pii", types=["email"])
    new, counts = op.map(chat("mail a@b.co or call 13812345678", "ok"))
    assert new["messages"][0]["content"] == "mail <EMAIL> or call 13812345678" and counts == {"email": 1}


# --- mix and split ---------------------------------------------------------------------------------------

def sourced(n: int, source: str) -> list[dict]:
    return [make_record([{"role": "user", "content": f"{source} {i}"}, {"role": "assistant", "content": "ok"}],
                        source={"file": source}) for i in range(n)]


def test_mix_caps_and_weights_give_exact_counts():
    records = sourced(50, "a.jsonl") + sourced(20, "b.jsonl")
    capped = resolve(build("mix", caps={"a.jsonl": 10, "*": 5}), records)
    assert sum(1 for i in capped if i < 50) == 40 and sum(1 for i in capped if i >= 50) == 15
    # weights 3:1 -> b (20) allows 80 in total, a only has 50 -> 50 a + 16 b (int of 66.67 * 1/4 = 16).
    weighted = resolve(build("mix", weights={"a.jsonl": 3, "b.jsonl": 1}), records)
    kept_a = 50 - sum(1 for i in weighted if i < 50)
    kept_b = 20 - sum(1 for i in weighted if i >= 50)
    assert (kept_a, kept_b) == (50, 16)


def test_mix_requires_exactly_one_mode():
    with pytest.raises(ValueError, match="exactly one"):
        operator_class("mix").Config()


def test_split_is_stratified_seeded_and_covers_every_record():
    records = sourced(100, "a.jsonl") + sourced(40, "b.jsonl")
    op = build("split", ratios={"train": 0.5, "validation": 0.25, "test": 0.25}, seed=3)
    decisions = resolve(op, records)
    assert sorted(decisions) == list(range(140))
    split_of = [decisions[i].meta["split"] for i in range(140)]
    assert split_of[:100].count("train") == 50 and split_of[100:].count("test") == 10
    assert [decisions[i].meta for i in range(140)] == [d.meta for _, d in sorted(resolve(op, records).items())]
    other_seed = resolve(build("split", ratios={"train": 0.5, "validation": 0.25, "test": 0.25}, seed=4), records)
    assert [other_seed[i].meta["split"] for i in range(140)] != split_of


def test_registry_has_every_operator_of_the_issue():
    operator_class("normalise")  # loads the registry
    assert {"normalise", "language", "heuristics", "exact_dedup", "near_dedup", "decontaminate", "pii", "mix",
            "split"} <= set(REGISTRY)


def test_decontaminate_skips_a_missing_benchmark_with_a_note_unless_required(tmp_path, monkeypatch):
    from oidkit.errors import ConfigError

    monkeypatch.setenv("OIDKIT_SHARED_DATA", str(tmp_path / "empty"))
    (tmp_path / "bench.jsonl").write_text(json_line({"question": "one two three four five"}), encoding="utf-8")
    mine = {"name": "mine", "path": str(tmp_path / "bench.jsonl"), "fields": ["question"]}
    op = build("decontaminate", benchmarks=["gsm8k", mine], ngram=5)
    [note] = op.notes
    assert note.startswith(f"benchmark gsm8k skipped: no file at {tmp_path / 'empty' / 'gsm8k_test.jsonl'}")
    assert "OIDKIT_SHARED_DATA" in note and "required: true" in note
    assert not op.keep(chat("please: one two three four five", "ok"))[0]  # the sets found still work
    with pytest.raises(ConfigError, match="benchmark gsm8k: no file at"):
        build("decontaminate", benchmarks=["gsm8k", mine], required=True)
