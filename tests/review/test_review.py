"""The review app's API, log, agreement and export, on crafted records whose answers are known."""

from __future__ import annotations

import random

import orjson
import pytest
from fastapi.testclient import TestClient

from oidkit.core.stats import wilson_interval
from oidkit.errors import ConfigError
from oidkit.io import read_records, write_jsonl
from oidkit.records import conversation_problems, make_reject
from oidkit.review.agreement import cohen_kappa
from oidkit.review.app import build, create_app, load_labels, serve
from oidkit.review.export import export_reviewed
from oidkit.review.log import ReviewLog

LABELS = ["good", "unsafe", "wrong"]
N_RECORDS = 120


def crafted_record(i: int) -> dict:
    """Record i: 2 turns (4 when i % 3 == 0), score i % 5 + 1 on even i, source a.json / b.json, lang en / fr."""
    messages = [{"role": "user", "content": f"Question {i}: tell me about topic{i}"},
                {"role": "assistant", "content": f"Answer {i} " + "x" * i}]
    if i % 3 == 0:
        messages += [{"role": "user", "content": "and more?"}, {"role": "assistant", "content": "More."}]
    meta: dict = {"lang": "fr" if i % 4 == 0 else "en"}
    if i % 2 == 0:
        meta["score"] = i % 5 + 1
    return {"id": f"r{i:03d}", "messages": messages,
            "source": {"file": f"/data/{'a' if i < 60 else 'b'}.json", "format": "sharegpt", "index": i}, "meta": meta}


@pytest.fixture
def files(tmp_path):
    records = [crafted_record(i) for i in range(N_RECORDS)]
    records[7]["messages"][0]["content"] = "Find the NEEDLE here <script>alert(1)</script>"
    data = tmp_path / "kept.jsonl"
    write_jsonl(data, records)
    duplicate = {**crafted_record(5), "id": "dup5"}
    rejects = tmp_path / "rejects.jsonl"
    write_jsonl(rejects, [
        make_reject(duplicate, stage="curate", operator="near_dedup", reason="near_duplicate", value=0.93,
                    duplicate_of="r005"),
        make_reject({**crafted_record(9), "id": "dup9"}, stage="curate", operator="exact_dedup",
                    reason="exact_duplicate", detail="same text as r009"),
        make_reject('{"broken": ', stage="ingest", operator="read", reason="invalid_json"),
    ])
    return data, rejects


def local_client(app) -> TestClient:
    """A client as the app's own page is one: addressed as 127.0.0.1, its writes from that origin."""
    return TestClient(app, base_url="http://127.0.0.1", headers={"Origin": "http://127.0.0.1"})


def client_for(files, tmp_path, **kwargs) -> tuple[TestClient, ReviewLog]:
    data, rejects = files
    index, log = build(str(data), rejects=str(rejects), log_path=str(tmp_path / "log.jsonl"),
                       sample=kwargs.pop("sample", None), seed=kwargs.pop("seed", 0))
    return local_client(create_app(index, log, labels=LABELS, **kwargs)), log


def keys(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["key"] for row in response.json()["items"]]


def test_paging_returns_every_record_once_in_file_order(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    seen = []
    for offset in range(0, N_RECORDS, 50):
        page = client.get("/api/records", params={"offset": offset, "limit": 50}).json()
        assert page["total"] == N_RECORDS
        seen += [row["key"] for row in page["items"]]
    assert seen == [f"r{i:03d}" for i in range(N_RECORDS)]


def test_filters_match_the_records_built_to_match(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    get = lambda **params: keys(client.get("/api/records", params={"limit": 200, **params}))  # noqa: E731
    assert get(source="b.json (sharegpt)") == [f"r{i:03d}" for i in range(60, N_RECORDS)]
    assert get(min_turns=3) == [f"r{i:03d}" for i in range(0, N_RECORDS, 3)]
    assert get(max_turns=2) == [f"r{i:03d}" for i in range(N_RECORDS) if i % 3]
    assert get(min_score=5) == [f"r{i:03d}" for i in range(0, N_RECORDS, 2) if i % 5 + 1 >= 5]
    assert get(lang="fr") == [f"r{i:03d}" for i in range(0, N_RECORDS, 4)]
    assert get(q="needle") == ["r007"]  # case-insensitive
    assert get(q="topic11", max_turns=2) == ["r011", "r110", "r112", "r113", "r115", "r116", "r118", "r119"]
    chars = {f"r{i:03d}": len("\n".join(m["content"] for m in crafted_record(i)["messages"])) for i in range(N_RECORDS)}
    assert get(min_chars=150, max_chars=160) == [k for k, n in chars.items() if 150 <= n <= 160 and k != "r007"]
    assert get(view="reject") == ["reject:0", "reject:1", "reject:2"]
    assert get(view="reject", operator="near_dedup") == ["reject:0"]
    assert get(view="reject", reason="invalid_json") == ["reject:2"]


def test_decisions_and_labels_filter_and_survive_a_restart(files, tmp_path):
    client, log = client_for(files, tmp_path)
    accepted = client.post("/api/decision", json={"key": "r001", "annotator": "ana", "decision": "accept"})
    assert accepted.status_code == 200
    client.post("/api/decision", json={"key": "r002", "annotator": "ana", "decision": "reject", "reason": "wrong"})
    client.post("/api/labels", json={"key": "r002", "annotator": "ana", "labels": ["wrong", "unsafe"]})
    get = lambda **params: keys(client.get("/api/records", params={"limit": 200, "annotator": "ana", **params}))  # noqa: E731
    assert get(status="accepted") == ["r001"]
    assert get(status="rejected") == ["r002"]
    assert len(get(status="unreviewed")) == N_RECORDS - 2
    assert get(label="unsafe") == ["r002"]
    bad = client.post("/api/labels", json={"key": "r002", "annotator": "ana", "labels": ["nope"]})
    assert bad.status_code == 422
    log.close()
    replayed = ReviewLog(tmp_path / "log.jsonl")
    assert replayed.decisions["r002"]["ana"]["reason"] == "wrong"
    assert replayed.labels["r002"]["ana"] == ["unsafe", "wrong"]
    assert replayed.seq == 3


def test_edit_conflict_returns_409_with_both_versions(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    original = client.get("/api/item", params={"key": "r010"}).json()
    assert original["version"] == 0
    mine = [dict(m) for m in original["record"]["messages"]]
    theirs = [dict(m) for m in original["record"]["messages"]]
    mine[1]["content"], theirs[1]["content"] = "ana's answer", "bo's answer"
    first = client.post("/api/edit", json={"key": "r010", "annotator": "bo", "base": 0, "messages": theirs})
    assert first.status_code == 200
    second = client.post("/api/edit", json={"key": "r010", "annotator": "ana", "base": 0, "messages": mine})
    assert second.status_code == 409
    body = second.json()
    assert body["current"]["messages"][1]["content"] == "bo's answer"
    assert body["current"]["version"] == first.json()["seq"]
    assert body["yours"]["messages"][1]["content"] == "ana's answer"
    resolved = client.post("/api/edit", json={"key": "r010", "annotator": "ana", "base": body["current"]["version"],
                                              "messages": mine})
    assert resolved.status_code == 200
    item = client.get("/api/item", params={"key": "r010"}).json()
    assert item["record"]["messages"][1]["content"] == "ana's answer"
    assert item["original_messages"][1]["content"].startswith("Answer 10")


@pytest.mark.parametrize(("messages", "code"), [
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}], "empty_assistant_turn"),
    ([{"role": "user", "content": "q"}, {"role": "user", "content": "a"}], "non_alternating"),
])
def test_invalid_edit_is_refused_with_422(files, tmp_path, messages, code):
    client, log = client_for(files, tmp_path)
    response = client.post("/api/edit", json={"key": "r001", "annotator": "ana", "base": 0, "messages": messages})
    assert response.status_code == 422
    assert code in response.json()["detail"]
    assert "r001" not in log.edits


def test_raw_ingest_reject_cannot_be_edited(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    messages = crafted_record(1)["messages"]
    response = client.post("/api/edit", json={"key": "reject:2", "annotator": "a", "base": 0, "messages": messages})
    assert response.status_code == 422


def test_reject_opens_next_to_the_record_it_duplicated(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    by_field = client.get("/api/item", params={"key": "reject:0"}).json()
    assert by_field["duplicate"]["key"] == "r005"
    assert by_field["reject"]["reason"] == "near_duplicate"
    by_detail = client.get("/api/item", params={"key": "reject:1"}).json()
    assert by_detail["duplicate"]["key"] == "r009"
    raw = client.get("/api/item", params={"key": "reject:2"}).json()
    assert raw["reject"]["raw"] == '{"broken": ' and "record" not in raw


def test_token_required_for_every_request(files, tmp_path):
    client, _ = client_for(files, tmp_path, token="s3cret")
    for path in ("/", "/api/meta", "/static/app.js", "/api/records"):
        assert client.get(path).status_code == 401
    assert client.get("/api/meta", headers={"x-review-token": "wrong"}).status_code == 401
    assert client.get("/api/meta", headers={"x-review-token": "s3cret"}).status_code == 200
    first = client.get("/?token=s3cret")
    assert first.status_code == 200 and first.cookies.get("oid_review_token") == "s3cret"
    assert client.get("/api/meta").status_code == 200  # the cookie set on the first visit now carries it


DECISION = {"key": "r001", "annotator": "ana", "decision": "accept"}


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"])
def test_loopback_host_names_are_answered(files, tmp_path, host):
    client, _ = client_for(files, tmp_path)
    assert client.get("/api/meta", headers={"Host": host}).status_code == 200
    origin = f"http://{host}"
    assert client.post("/api/decision", json=DECISION, headers={"Host": host, "Origin": origin}).status_code == 200


def test_other_host_names_are_refused_so_dns_rebinding_cannot_reach_the_app(files, tmp_path):
    client, log = client_for(files, tmp_path)
    for host in ("evil.example", "127.0.0.1.evil.example", "evil.example:8765", ""):
        headers = {"Host": host, "Origin": f"http://{host}"}
        for path in ("/", "/api/meta", "/api/records", "/api/item?key=r001"):
            assert client.get(path, headers=headers).status_code == 403
        refused = client.post("/api/decision", json=DECISION, headers=headers)
        assert refused.status_code == 403 and "host" in refused.json()["detail"]
    assert log.seq == 0  # nothing was written


def test_writes_need_the_apps_own_origin(files, tmp_path):
    client, log = client_for(files, tmp_path)
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
        refused = client.post("/api/decision", json=DECISION, headers={"Origin": origin})
        assert refused.status_code == 403 and "Origin" in refused.json()["detail"]
    del client.headers["Origin"]
    assert client.post("/api/labels", json={"key": "r001", "annotator": "a", "labels": []}).status_code == 403
    assert client.get("/api/meta").status_code == 200  # reads need no Origin
    assert log.seq == 0
    with_token, _ = client_for(files, tmp_path, token="s3cret")  # a script that holds the token needs no Origin
    del with_token.headers["Origin"]
    assert with_token.post("/api/decision", json=DECISION, headers={"x-review-token": "s3cret"}).status_code == 200


def test_a_given_host_is_answered_under_its_own_name(files, tmp_path):
    client, _ = client_for(files, tmp_path, token="s3cret", host="review.lan")
    headers = {"Host": "review.lan:8765", "x-review-token": "s3cret"}
    assert client.get("/api/meta", headers=headers).status_code == 200
    assert client.get("/api/meta", headers={**headers, "Host": "other.lan"}).status_code == 403


def test_listening_beyond_loopback_without_token_is_refused(files):
    with pytest.raises(ConfigError, match="--token"):
        serve(str(files[0]), host="0.0.0.0")


def test_pages_forbid_inline_scripts(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_kappa_matches_hand_computation_and_sklearn():
    first = ["a", "a", "r", "r", "a", "a", "r", "a", "a", "a"]
    second = ["a", "r", "r", "r", "a", "a", "a", "a", "a", "r"]
    # p_o = 7/10; p_e = 0.7*0.6 + 0.3*0.4 = 0.54; kappa = 0.16 / 0.46
    assert cohen_kappa(first, second) == pytest.approx(0.16 / 0.46)
    assert cohen_kappa(["x", "x"], ["x", "x"]) == 1.0
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    for _ in range(20):
        a = [rng.choice("abc") for _ in range(30)]
        b = [x if rng.random() < 0.6 else rng.choice("abc") for x in a]
        assert cohen_kappa(a, b) == pytest.approx(metrics.cohen_kappa_score(a, b))


def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10)  # textbook value for 8/10: 0.490 - 0.943
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)


def test_progress_and_agreement_over_the_api(files, tmp_path):
    client, _ = client_for(files, tmp_path)
    first = ["accept", "accept", "reject", "reject", "accept", "accept", "reject", "accept", "accept", "accept"]
    second = ["accept", "reject", "reject", "reject", "accept", "accept", "accept", "accept", "accept", "reject"]
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        client.post("/api/decision", json={"key": f"r{i:03d}", "annotator": "ana", "decision": a})
        client.post("/api/decision", json={"key": f"r{i:03d}", "annotator": "bo", "decision": b})
        client.post("/api/labels", json={"key": f"r{i:03d}", "annotator": "ana", "labels": ["good"] if i < 5 else []})
        client.post("/api/labels", json={"key": f"r{i:03d}", "annotator": "bo", "labels": ["good"] if i < 6 else []})
    body = client.get("/api/progress").json()
    ana = next(p for p in body["progress"] if p["annotator"] == "ana")
    assert (ana["decided"], ana["accepted"], ana["rejected"], ana["total"]) == (10, 7, 3, N_RECORDS + 3)
    (pair,) = body["agreement"]
    assert pair["decisions"] == {"n": 10, "percent": 0.7, "kappa": round(0.16 / 0.46, 4)}
    # good: ana 5 yes / 5 no, bo 6 yes / 4 no, 9 of 10 agree: p_e = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa 0.8
    assert pair["labels"]["good"] == {"n": 10, "percent": 0.9, "kappa": 0.8}


def test_sample_is_seeded_and_the_same_for_everyone(files, tmp_path):
    first, _ = client_for(files, tmp_path, sample=10, seed=4)
    again, _ = client_for(files, tmp_path / "other", sample=10, seed=4)
    chosen = keys(first.get("/api/records", params={"sample": True, "limit": 200}))
    assert len(chosen) == 10 and chosen == keys(again.get("/api/records", params={"sample": True, "limit": 200}))
    other_seed, _ = client_for(files, tmp_path / "third", sample=10, seed=5)
    assert chosen != keys(other_seed.get("/api/records", params={"sample": True, "limit": 200}))
    assert first.get("/api/progress", params={"sample": True}).json()["progress"] == []


def test_cut_last_line_is_skipped_and_appending_goes_on(tmp_path):
    path = tmp_path / "log.jsonl"
    log = ReviewLog(path)
    log.decide("r1", "ana", "accept")
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"seq": 2, "annotator": "ana", "key": "r2", "act')  # killed mid-write, never acknowledged
    log = ReviewLog(path)
    assert log.skipped_lines == 1 and log.seq == 1
    log.decide("r3", "ana", "reject")
    log.close()
    assert ReviewLog(path).decisions.keys() == {"r1", "r3"}


def test_export_applies_edits_drops_rejected_and_restores_accepted_rejects(files, tmp_path):
    client, log = client_for(files, tmp_path)
    messages = [{"role": "user", "content": "fixed question"}, {"role": "assistant", "content": "fixed answer"}]
    assert client.post("/api/edit", json={"key": "r003", "annotator": "ana", "base": 0,
                                          "messages": messages}).status_code == 200
    client.post("/api/decision", json={"key": "r003", "annotator": "ana", "decision": "accept"})
    client.post("/api/labels", json={"key": "r003", "annotator": "ana", "labels": ["good"]})
    client.post("/api/decision", json={"key": "r004", "annotator": "ana", "decision": "reject", "reason": "bad"})
    client.post("/api/decision", json={"key": "r006", "annotator": "ana", "decision": "reject"})
    client.post("/api/decision", json={"key": "r006", "annotator": "bo", "decision": "accept"})  # latest wins
    client.post("/api/decision", json={"key": "reject:0", "annotator": "ana", "decision": "accept"})
    log.close()
    data, rejects = files
    out = tmp_path / "reviewed.jsonl"
    summary = export_reviewed(data, out, log_path=tmp_path / "log.jsonl", rejects=rejects)
    exported = {r["id"]: r for r in read_records(out)}
    assert summary["written"] == len(exported) == N_RECORDS - 1 + 1
    assert "r004" not in exported and "dup5" in exported and "dup9" not in exported
    assert exported["r003"]["messages"] == messages
    assert exported["r003"]["meta"]["review"]["labels"] == ["good"]
    assert exported["r003"]["meta"]["review"]["status"] == "accept"
    assert exported["r003"]["meta"]["review"]["edited_by"] == "ana"
    assert exported["r006"]["meta"]["review"]["status"] == "accept"
    assert exported["r010"]["meta"]["review"]["status"] == "unreviewed"
    assert exported["dup5"]["meta"]["review"]["restored_from"]["reason"] == "near_duplicate"
    assert exported["r002"]["meta"]["lang"] == "en"  # the record's own meta is kept
    assert all(not conversation_problems(r["messages"]) for r in exported.values())
    only = export_reviewed(data, tmp_path / "only.jsonl", log_path=tmp_path / "log.jsonl", only_accepted=True)
    assert only["written"] == 2  # r003 and r006; the accepted reject is not in the inputs without --rejects
    assert orjson.loads((tmp_path / "log.jsonl").read_bytes().splitlines()[0])["seq"] == 1


def test_label_set_from_comma_list_and_yaml(tmp_path):
    assert load_labels("good, bad,,ugly") == ["good", "bad", "ugly"]
    (tmp_path / "labels.yaml").write_text("labels: [helpful, harmful]\n")
    assert load_labels(str(tmp_path / "labels.yaml")) == ["helpful", "harmful"]
    (tmp_path / "bad.yaml").write_text("labels: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_labels(str(tmp_path / "bad.yaml"))


def test_languages_of_records_without_meta_lang_are_identified_in_a_child_process(tmp_path):
    data = tmp_path / "mixed.jsonl"
    english = "Could you explain how photosynthesis turns sunlight into chemical energy in plants?"
    french = "Pourriez-vous m'expliquer comment la photosynthèse transforme la lumière du soleil en énergie ?"
    texts_and_metas = [(english, {}), (french, {}), (english, {"lang": "xx"})]
    write_jsonl(data, [{"id": str(i), "messages": [{"role": "user", "content": text}, {"role": "assistant",
                                                                                       "content": "..."}],
                        "source": {}, "meta": meta} for i, (text, meta) in enumerate(texts_and_metas)])
    index, log = build(str(data), log_path=str(tmp_path / "log.jsonl"))
    client = local_client(create_app(index, log, labels=[]))
    assert keys(client.get("/api/records", params={"lang": "fr"})) == ["1"]
    assert keys(client.get("/api/records", params={"lang": "en"})) == ["0"]
    assert keys(client.get("/api/records", params={"lang": "xx"})) == ["2"]  # meta.lang wins


@pytest.mark.real
def test_real_sharegpt_pages_searches_and_opens(sharegpt_file, tmp_path):
    records = list(read_records(sharegpt_file, salvage=True, on_reject=lambda reject: None))
    index, log = build(str(sharegpt_file), log_path=str(tmp_path / "log.jsonl"), salvage=True,
                       identify_languages=False)
    client = local_client(create_app(index, log, labels=LABELS))
    page = client.get("/api/records", params={"offset": 10_000, "limit": 5}).json()
    assert page["total"] == len(records)
    assert [row["key"] for row in page["items"]] == [r["id"] for r in records[10_000:10_005]]
    expected = [r["id"] for r in records if "kubernetes" in "\n".join(m["content"] for m in r["messages"]).lower()]
    found = client.get("/api/records", params={"q": "Kubernetes", "limit": 200}).json()
    assert found["total"] == len(expected) > 0
    opened = client.get("/api/item", params={"key": records[-1]["id"]}).json()
    assert opened["record"]["messages"] == records[-1]["messages"]


def test_review_languages_follow_the_one_rule_including_curations_stamp():
    from oidkit.core.language import LanguageIdentifier, record_language
    from oidkit.review.languages import identify_languages

    records = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}],
                "meta": {"lang": "en"}},  # stamped by curate's language step: py3langid alone says otherwise
               {"messages": [{"role": "user", "content": "请解释一下什么是机器学习，用几句话说明。"}], "meta": {}}]
    identifier = LanguageIdentifier()
    assert identify_languages(records) == [record_language(r, identifier) for r in records] == ["en", "zh"]
