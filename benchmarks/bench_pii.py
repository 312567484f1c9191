"""PII redaction: recall and precision per type and per language on a planted set, counts on real ShareGPT.

The planted set is generated here (seeded): each case is an English or Chinese sentence holding one value
of one type (e-mails, phones in Chinese, North American and international forms, IPv4/IPv6, Luhn-valid
cards, Chinese resident IDs with their check character, API keys including AWS secret keys), and near
misses that look like one (versions, code slices, parcel and order numbers, file names, git SHAs, IDs
with a wrong check character...). A planted value counts as found when the redacted text no longer holds
it and a redaction of its type was counted; every redaction beyond the planted ones is a false hit.
On the real ShareGPT sample the counts per type are printed with 20 hits (seeded) to read.

    python benchmarks/bench_pii.py --out bench-out/pii.json
    python benchmarks/bench_pii.py --cases 40 --sample 2000
"""

from __future__ import annotations

import argparse
import random
import string
import time
from collections import Counter
from collections.abc import Callable

from common import print_table, sharegpt_records, write_figures
from oidkit.curate.ops.pii import PLACEHOLDERS, redact

TYPES = list(PLACEHOLDERS)
GOAL = 0.98
ALNUM = string.ascii_letters + string.digits
NAMES = ["john", "mary.smith", "li.wei", "zhang_san", "a.kumar", "dev+test", "wang2021", "chen-lin", "o.brien"]
DOMAINS = ["gmail.com", "qq.com", "163.com", "mail.acme-corp.org", "company.co.uk", "uni-berlin.de", "outlook.com"]
AREAS = ["110105", "310104", "440106", "510107", "330106", "420102"]


def luhn_complete(body: str) -> str:
    """``body`` with the Luhn check digit appended."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return body + str(-total % 10)


def wrong_luhn(rng: random.Random) -> str:
    """A 16-digit number that looks like a card but fails the Luhn check."""
    valid = luhn_complete("4" + digits(rng, 14))
    return valid[:-1] + str((int(valid[-1]) + rng.randint(1, 9)) % 10)


def cn_id(rng: random.Random, valid: bool = True) -> str:
    body = (rng.choice(AREAS) + f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            + f"{rng.randint(0, 999):03d}")
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return body + check


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def token(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def aws_secret(rng: random.Random) -> str:
    while True:  # mixed, as real ones are
        value = token(rng, 40, ALNUM + "/+")
        if any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value):
            return value


def card(rng: random.Random) -> str:
    number = luhn_complete(rng.choice("45") + digits(rng, 14))
    sep = rng.choice(["", " ", "-"])
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


def phone(rng: random.Random) -> str:
    mobile = "1" + rng.choice("3456789") + digits(rng, 9)
    area, mid, last = str(rng.randint(201, 989)), str(rng.randint(200, 999)), digits(rng, 4)
    return rng.choice([
        mobile, f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}", f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
        f"({area}) {mid}-{last}", f"{area}-{mid}-{last}", f"+1 {area} {mid} {last}", f"{area}.{mid}.{last}",
        f"+33 {rng.randint(1, 9)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
        f"+44 20 {digits(rng, 4)} {digits(rng, 4)}", f"+49 30 {digits(rng, 8)}",
        f"+81 3-{digits(rng, 4)}-{digits(rng, 4)}",
    ])


def ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        first = rng.choice([192, 10] + [n for n in range(11, 224) if n != 127])  # 127: loopback, nobody's
        second = 168 if first == 192 else rng.randint(0, 255)
        return f"{first}.{second}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [f"{rng.randint(1, 0xffff):x}" for _ in range(8)]
    return rng.choice([":".join(groups), f"2001:db8::{groups[0]}:{groups[1]}", f"fe80::{groups[2]}:{groups[3]}"])


# Each type: how to make a value, and the English and Chinese sentences it sits in ({v}; {w}: the key word).
PLANTED: dict[str, tuple[Callable[[random.Random], str], list[str], list[str]]] = {
    "email": (lambda rng: f"{rng.choice(NAMES)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}",
              ["Write to {v} for details.", "My email is {v}, thanks!", "cc: {v}"],
              ["请发邮件到{v}，谢谢。", "我的邮箱是：{v}", "联系邮箱 {v} 或者留言"]),
    "phone": (phone, ["Call me at {v} tomorrow.", "phone: {v}", "You can reach our office on {v}."],
              ["我的手机号是{v}。", "联系电话：{v}", "请拨打{v}咨询"]),
    "ip_address": (ip, ["The server is at {v} now.", "ssh root@host -p 22 # host {v}", "Ping {v} to check."],
                   ["服务器地址是{v}，", "请访问 {v} 查看", "我的IP：{v}"]),
    "credit_card": (card, ["My card number is {v}.", "Pay with {v} please", "card: {v} exp 04/27"],
                    ["我的信用卡号是{v}。", "卡号：{v}", "请用{v}付款"]),
    "cn_id": (cn_id, ["ID number {v} on the form.", "Her resident ID is {v}."],
              ["身份证号码：{v}", "我的身份证是{v}，请核对。"]),
    "api_key": (lambda rng: rng.choice([
        "sk-" + token(rng, 48), "AKIA" + token(rng, 16, string.ascii_uppercase + string.digits),
        "ghp_" + token(rng, 36), "hf_" + token(rng, 34), "AIza" + token(rng, 35), "SECRET:" + aws_secret(rng)]),
                ["export OPENAI_API_KEY={v}", "my key is {v} do not share", "token = \"{v}\""],
                ["我的密钥是{v}，别泄露", "配置：key={v}", "用这个 {v} 调用接口"]),
}


def near_misses(rng: random.Random) -> dict[str, list[Callable[[], tuple[str, str]]]]:
    """Per type, makers of (English, Chinese) sentences that look like it and are not."""
    def ver() -> str:
        return f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}"

    return {
        "email": [lambda: (f"icon@{rng.randint(2, 3)}x.png in the assets", f"图标文件 logo@{rng.randint(2, 3)}x.png"),
                  lambda: (f"connect to {rng.choice(NAMES)}@localhost", f"登录 {rng.choice(NAMES)}@localhost 即可"),
                  lambda: (f"npm install react@{rng.randint(15, 18)}.{rng.randint(0, 9)}.0",
                           f"安装 vue@{rng.randint(2, 3)}.{rng.randint(0, 9)}.1"),
                  lambda: ("use the @property decorator", "微博上 @张三 说了")],
        "phone": [lambda: (f"tracking number {digits(rng, 3)}-{digits(rng, 3)}-{digits(rng, 4)}",
                           f"快递单号：{rng.choice('3456789')}{digits(rng, 10)}"),
                  lambda: (f"order #{rng.randint(201, 989)}-{digits(rng, 3)}-{digits(rng, 4)} shipped",
                           f"订单号 1{rng.choice('3456789')}{digits(rng, 9)} 已发货"),
                  lambda: (f"parcel {rng.randint(201, 989)} {digits(rng, 3)} {digits(rng, 4)} arrived",
                           f"运单号为{rng.randint(201, 989)}-{digits(rng, 3)}-{digits(rng, 4)}"),
                  lambda: (f"on 20{rng.randint(10, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                           f"{rng.randint(10, 23)}:{rng.randint(10, 59)}", f"价格 +{rng.randint(1, 99)} 元"),
                  lambda: (f"ISBN 978-{rng.randint(0, 9)}-{digits(rng, 3)}-{digits(rng, 5)}-{rng.randint(0, 9)}",
                           f"序列号 {digits(rng, 3)}-{digits(rng, 3)}-{digits(rng, 4)}")],
        "ip_address": [lambda: (f"version {ver()} fixes it", f"版本 {ver()} 修复了"),
                       lambda: (f"download python-{ver()}.tar.gz", f"下载 tool_{ver()}-win64.zip"),
                       lambda: (f"take a[{rng.randint(0, 9)}::{rng.randint(1, 9)}] for odd items",
                                f"切片 x[{rng.randint(0, 9)}::{rng.randint(1, 9)}] 取偶数位"),
                       lambda: (f"see section {ver()} of the spec", f"见第{ver()}节"),
                       lambda: (f"at {rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)} sharp",
                                "std::vector<int> 和 a::b::c")],
        "credit_card": [lambda: (f"card {wrong_luhn(rng)} is wrong", f"卡号 {wrong_luhn(rng)} 无效"),
                        lambda: (f"order 1{digits(rng, 15)}", f"订单号1{digits(rng, 15)}"),
                        lambda: (f"timestamp 1{digits(rng, 12)} ms", f"时间戳 1{digits(rng, 12)}"),
                        lambda: (f"pi is {3.14159265358979:.14f}", f"数量 {digits(rng, 3)} 个")],
        "cn_id": [lambda: (f"ID {cn_id(rng, valid=False)} fails its check", f"身份证 {cn_id(rng, valid=False)} 校验错"),
                  lambda: (f"order 1{digits(rng, 17)}", f"编号 9{digits(rng, 17)}")],
        "api_key": [lambda: (f"commit {token(rng, 40, '0123456789abcdef')} fixed it",
                             f"提交 {token(rng, 40, '0123456789abcdef')} 修复了"),
                    lambda: (f"hash {aws_secret(rng)} of the file", f"文件摘要 {aws_secret(rng)}"),
                    lambda: ("import sklearn as sk-learn is wrong", "用 hf_hub_download 下载"),
                    lambda: (f"AKIA{token(rng, 8, string.ascii_uppercase)} is too short",
                             f"ghp_{token(rng, 10)} 太短")],
    }


def planted_set(rng: random.Random, per_type: int, misses_per_type: int) -> list[dict]:
    """Cases ``{text, kind, values, lang}``: ``values`` (usually one) is empty for a near miss, whose ``kind``
    is the type it resembles."""
    cases = []
    for kind, (make, english, chinese) in PLANTED.items():
        for i in range(per_type):
            lang, templates = ("en", english) if i % 2 else ("zh", chinese)
            value = make(rng)
            if value.startswith("SECRET:"):  # an AWS secret key is written beside its name or its key id
                values = [value[len("SECRET:"):]]
                key_id = "AKIA" + token(rng, 16, string.ascii_uppercase + string.digits)
                text = rng.choice([f"aws_secret_access_key = {values[0]}", f"AWS 密钥: {values[0]}",
                                   f"{key_id} {values[0]}"])
                values += [key_id] if key_id in text else []
            else:
                values, text = [value], rng.choice(templates).format(v=value)
            cases.append({"text": text, "kind": kind, "values": values, "lang": lang})
    for kind, makers in near_misses(rng).items():
        for i in range(misses_per_type):
            english, chinese = makers[i % len(makers)]()
            cases.append({"text": chinese if i % 2 else english, "kind": kind, "values": [],
                          "lang": "zh" if i % 2 else "en"})
    return cases


def score(cases: list[dict]) -> dict[str, dict[str, int]]:
    """Per type and per (type, language): planted, found, near misses, and redactions (true and false)."""
    tally: dict[str, Counter] = {}
    for case in cases:
        counts: dict[str, int] = {}
        redacted = redact(case["text"], TYPES, counts)
        found = sum(value not in redacted for value in case["values"])
        found = min(found, counts.get(case["kind"], 0))  # gone, and redacted as its own type
        for key in (case["kind"], f"{case['kind']}/{case['lang']}"):
            row = tally.setdefault(key, Counter())
            row["planted"] += len(case["values"])
            row["near_misses"] += not case["values"]
            row["found"] += found
        for kind, n in counts.items():
            true = found if kind == case["kind"] else 0
            for key in (kind, f"{kind}/{case['lang']}"):
                tally.setdefault(key, Counter())
                tally[key]["true_hits"] += true
                tally[key]["false_hits"] += n - true
    return {key: dict(row) for key, row in tally.items()}


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def real_sample(limit: int, rng: random.Random, show: int) -> tuple[Counter, list[tuple[str, str, str]], int, float]:
    """Redaction counts per type on real ShareGPT turns, ``show`` hits with their context, turns, seconds."""
    records = sharegpt_records(limit)
    hits: list[tuple[str, str, str]] = []
    counts: Counter = Counter()
    turns, began = 0, time.perf_counter()
    for record in records:
        for message in record["messages"]:
            found: list[tuple[str, str]] = []
            redact(message["content"], TYPES, {}, found)
            turns += 1
            for kind, value in found:
                counts[kind] += 1
                at = message["content"].find(value)
                context = message["content"][max(0, at - 40):at + len(value) + 40].replace("\n", " ")
                hits.append((kind, value, context))
    seconds = time.perf_counter() - began
    return counts, rng.sample(hits, min(show, len(hits))), turns, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40, help="planted values per type (half English, half Chinese)")
    parser.add_argument("--near-misses", type=int, default=20, help="near misses per type")
    parser.add_argument("--sample", type=int, default=None, help="real ShareGPT records to scan (default: all)")
    parser.add_argument("--show", type=int, default=20, help="real hits printed to read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    cases = planted_set(rng, args.cases, args.near_misses)
    tally = score(cases)
    rows, figures = [], {"planted": sum(len(c["values"]) for c in cases),
                         "near_misses": sum(not c["values"] for c in cases), "goal": GOAL, "per_type": {}}
    for key in [k for kind in TYPES for k in (kind, f"{kind}/en", f"{kind}/zh")]:
        row = tally.get(key, {})
        recall = ratio(row.get("found", 0), row.get("planted", 0))
        precision = ratio(row.get("true_hits", 0), row.get("true_hits", 0) + row.get("false_hits", 0))
        figures["per_type"][key] = {**row, "recall": recall, "precision": precision}
        mark = "" if "/" in key or (recall >= GOAL and precision >= GOAL) else "  below goal"
        rows.append([key, row.get("planted", 0), row.get("found", 0), f"{recall:.3f}", row.get("near_misses", 0),
                     row.get("false_hits", 0), f"{precision:.3f}{mark}"])
    print_table(f"PII on {figures['planted']} planted values and {figures['near_misses']} near misses "
                f"(goal: recall and precision >= {GOAL} per type)",
                ["type/lang", "planted", "found", "recall", "near misses", "false hits", "precision"], rows)

    counts, shown, turns, seconds = real_sample(args.sample, rng, args.show)
    print_table(f"real ShareGPT: redactions in {turns:,} turns ({turns / seconds:,.0f} turns/s)", ["type", "hits"],
                [[kind, counts.get(kind, 0)] for kind in TYPES])
    print(f"\n{len(shown)} real hits to read (seeded): type, what was redacted, and its context")
    for kind, value, context in shown:
        print(f"  {kind:<12} {value!r:<30} ...{context}...")
    figures["real"] = {"turns": turns, "turns_per_s": turns / seconds, "counts": dict(counts),
                       "shown": [{"type": k, "value": v, "context": c} for k, v, c in shown]}
    write_figures(args.out, figures)


if __name__ == "__main__":
    main()
