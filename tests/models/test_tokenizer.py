"""Tokenizer training (byte-level BPE, ChatML) and the tokenizer comparison statistics."""

from __future__ import annotations

import json

import pytest

from oidkit.models.tokenizer import tokenizer_stats, train_tokenizer
from oidkit.text import script_language

ENGLISH = "the cat sat on the mat and the dog sat on the log"
CHINESE = "我爱北京天安门"  # 7 characters, 21 UTF-8 bytes


@pytest.fixture()
def corpus(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text(f"{ENGLISH}\n\n{CHINESE}\n", encoding="utf-8")
    records = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": "say hello"}, {"role": "assistant", "content": "hello there"}]}]
    records.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return [text, records]


def test_trained_tokenizer_is_lossless_with_chatml(corpus, tmp_path):
    from transformers import AutoTokenizer

    result = train_tokenizer(corpus, tmp_path / "tok", vocab_size=300)
    assert result["texts"] == 3  # two paragraphs + one record
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert len(tokenizer) <= 300
    for text in (ENGLISH, CHINESE, "never seen: 🦙 ñ"):  # byte-level: even unseen characters encode
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == tokenizer.eos_token_id


def test_stats_count_bytes_for_a_merge_free_tokenizer(corpus, tmp_path):
    # 3 special tokens + 256 bytes = 259: no merges, so one token per UTF-8 byte
    train_tokenizer(corpus, tmp_path / "bytes", vocab_size=259)
    train_tokenizer(corpus, tmp_path / "merged", vocab_size=400)
    stats = tokenizer_stats(corpus[:1], [str(tmp_path / "bytes"), str(tmp_path / "merged")])
    assert stats["corpus"]["en"]["characters"] == len(ENGLISH)
    assert stats["corpus"]["en"]["words"] == len(ENGLISH.split())
    plain = stats["tokenizers"][str(tmp_path / "bytes")]
    assert plain["languages"]["en"]["tokens_per_char"] == 1.0
    assert plain["languages"]["zh"]["tokens_per_char"] == 3.0
    assert plain["unknown_tokens"] == 0 and plain["lossy_texts"] == 0
    merged = stats["tokenizers"][str(tmp_path / "merged")]
    assert merged["languages"]["en"]["tokens"] < plain["languages"]["en"]["tokens"]


def test_stats_count_unknown_tokens(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]").save_pretrained(tmp_path / "words")
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world hello you")
    result = tokenizer_stats([corpus], [str(tmp_path / "words")])["tokenizers"][str(tmp_path / "words")]
    assert result["unknown_tokens"] == 2
    assert result["lossy_texts"] == 1
    assert result["vocab_used"] == 2


def test_language_split():
    assert script_language(CHINESE + " ok") == "zh"
    assert script_language(ENGLISH + " 猫") == "en"


def test_empty_corpus_is_a_user_error(tmp_path):
    from oidkit.errors import InputError

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no text"):
        train_tokenizer([empty], tmp_path / "tok", vocab_size=300)
