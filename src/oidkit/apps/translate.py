"""Chinese <-> English translation from WMT news/general test sets (line-aligned source and reference files).

Training: WMT21 news zh->en and the first part of WMT21 en->zh. Test: WMT22 general zh->en (news,
e-commerce, social, customer-service conversation) and the held-out last lines of WMT21 en->zh (a
contiguous block, so its documents do not leak into training). The system prompt says the task in both
languages; the user turn is the source sentence; the assistant turn its reference translation.
"""

from __future__ import annotations

import random
from pathlib import Path

from oidkit.apps import Built, Source, record, reject

PROMPTS = {
    "zh-en": "Translate the user's Chinese text into English. Reply with the translation only.\n"
             "请把用户的中文翻译成英文，只回复译文。",
    "en-zh": "Translate the user's English text into Chinese. Reply with the translation only.\n"
             "请把用户的英文翻译成中文，只回复译文。",
}


def aligned_pairs(name: str, source_file: Path, reference_file: Path, direction: str, rejects: list[dict],
                  ) -> tuple[list[dict], Source]:
    """Records of a line-aligned pair of files; empty sides are rejected; differing line counts are an error."""
    from oidkit.errors import InputError

    sources = source_file.read_text(encoding="utf-8").splitlines()
    references = reference_file.read_text(encoding="utf-8").splitlines()
    if len(sources) != len(references):
        raise InputError(f"{len(sources)} source lines but {len(references)} reference lines in {reference_file}",
                         file=str(source_file), hint="source and reference files must be line-aligned")
    seen, records = Source(name), []
    for line, (src, ref) in enumerate(zip(sources, references, strict=True), start=1):
        seen.rows += 1
        where = {"file": str(source_file), "line": line}
        if not src.strip() or not ref.strip():
            reject(seen, rejects, "empty_side", "the source or the reference line is empty", [src, ref], where)
            continue
        records.append(record(f"{name}-{line}", [{"role": "system", "content": PROMPTS[direction]},
                                                 {"role": "user", "content": src.strip()},
                                                 {"role": "assistant", "content": ref.strip()}],
                              where, test_set=name, direction=direction))
        seen.records += 1
    return records, seen


def build(files: dict[str, Path], sizes: dict, seed: int) -> Built:
    """``files``: zh_en_train_src/ref, en_zh_src/ref, zh_en_test_src/ref; ``sizes``: test_zh_en, test_en_zh, train."""
    rejects: list[dict] = []
    zh_en_train, s1 = aligned_pairs("wmt21_zh_en", files["zh_en_train_src"], files["zh_en_train_ref"], "zh-en", rejects)
    en_zh, s2 = aligned_pairs("wmt21_en_zh", files["en_zh_src"], files["en_zh_ref"], "en-zh", rejects)
    zh_en_test, s3 = aligned_pairs("wmt22_zh_en", files["zh_en_test_src"], files["zh_en_test_ref"], "zh-en", rejects)
    held_out = sizes["test_en_zh"]
    en_zh_train, en_zh_test = en_zh[:-held_out], en_zh[-held_out:]
    for item in en_zh_test:
        item["meta"]["test_set"] = "wmt21_en_zh_heldout"
    train = zh_en_train + en_zh_train
    random.Random(seed).shuffle(train)
    test = random.Random(seed).sample(zh_en_test, min(sizes["test_zh_en"], len(zh_en_test))) + en_zh_test
    return Built(train[:sizes.get("train")], test, [s1, s2, s3], rejects, PROMPTS["zh-en"])
