"""Chat templates to tensors: assistant-only labels, truncation, packing isolation, the tokenisation cache."""

from __future__ import annotations

import random

import pytest
import torch

from oidkit.core.chat import IGNORE_INDEX, encode_record
from oidkit.errors import InputError
from oidkit.io import write_jsonl
from oidkit.models.loss import TargetLoss
from oidkit.train import data as data_module
from oidkit.train.data import load_tokenized
from oidkit.train.loop import token_loss_sum
from oidkit.train.packing import collate_rows, pack_examples

CONVERSATION = {"id": "c1", "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is two plus two?"},
    {"role": "assistant", "content": "It is four."},
    {"role": "user", "content": "And three plus three?"},
    {"role": "assistant", "content": "Six."},
]}


def targets_text(tokenizer, example: dict) -> str:
    """The text of the tokens the loss is computed on."""
    return tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX])


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def test_assistant_only_labels_cover_exactly_the_answers(tiny_tokenizer):
    example, status = encode_record(CONVERSATION, tiny_tokenizer, tiny_tokenizer.chat_template)
    assert status == "ok"
    assert targets_text(tiny_tokenizer, example) == "It is four.<|im_end|>\nSix.<|im_end|>\n"
    # labels are the next token: wherever a label is set, it equals the following input id
    ids, labels = example["input_ids"], example["labels"]
    assert all(labels[t] == ids[t + 1] for t in range(len(ids) - 1) if labels[t] != IGNORE_INDEX)


def test_train_on_last_assistant_and_all(tiny_tokenizer):
    template = tiny_tokenizer.chat_template
    last, _ = encode_record(CONVERSATION, tiny_tokenizer, template, train_on="last_assistant")
    assert targets_text(tiny_tokenizer, last) == "Six.<|im_end|>\n"
    everything, _ = encode_record(CONVERSATION, tiny_tokenizer, template, train_on="all")
    full = tiny_tokenizer.apply_chat_template(CONVERSATION["messages"], tokenize=False)
    assert tiny_tokenizer.decode(everything["input_ids"][0]) + targets_text(tiny_tokenizer, everything) == full


REASONING = {"id": "r1", "messages": [
    {"role": "user", "content": "What is two plus two?"},
    {"role": "assistant", "content": "It is four.", "reasoning": "Add two and two."},
]}
# a ChatML template that renders reasoning itself, as Qwen3's does
THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message.reasoning_content %}<think>{{ message.reasoning_content }}</think>{% endif %}"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize(("reasoning", "learned"), [
    ("train", "<think>\nAdd two and two.\n</think>\n\nIt is four.<|im_end|>\n"),
    ("mask", "It is four.<|im_end|>\n"),
    ("drop", "It is four.<|im_end|>\n"),
])
def test_reasoning_inline_is_learned_masked_or_dropped(tiny_tokenizer, reasoning, learned):
    example, _ = encode_record(REASONING, tiny_tokenizer, tiny_tokenizer.chat_template, reasoning=reasoning)
    assert targets_text(tiny_tokenizer, example) == learned
    text = tiny_tokenizer.decode(example["input_ids"])
    assert ("Add two and two." in text) == (reasoning != "drop")


def test_reasoning_goes_where_a_thinking_template_reads_it(tiny_tokenizer):
    trained, _ = encode_record(REASONING, tiny_tokenizer, THINKING_TEMPLATE)
    assert targets_text(tiny_tokenizer, trained) == "<think>Add two and two.</think>It is four.<|im_end|>\n"
    masked, _ = encode_record(REASONING, tiny_tokenizer, THINKING_TEMPLATE, reasoning="mask")
    assert targets_text(tiny_tokenizer, masked) == "<think></think>It is four.<|im_end|>\n"


def test_truncation_never_cuts_the_first_answer_silently(tiny_tokenizer):
    template = tiny_tokenizer.chat_template
    long_answer = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * 200}]}
    assert encode_record(long_answer, tiny_tokenizer, template, max_seq_len=64) == (None, "dropped")
    kept, status = encode_record(long_answer, tiny_tokenizer, template, max_seq_len=64, overlong="truncate")
    assert status == "truncated_answer" and len(kept["input_ids"]) == 64
    long_tail = {"messages": [*CONVERSATION["messages"][:3], {"role": "user", "content": "more " * 200},
                              {"role": "assistant", "content": "ok"}]}
    cut, status = encode_record(long_tail, tiny_tokenizer, template, max_seq_len=48)
    assert status == "truncated" and len(cut["input_ids"]) == 48
    assert targets_text(tiny_tokenizer, cut).startswith("It is four.<|im_end|>")


@pytest.mark.real
def test_assistant_labels_with_the_real_smollm2_template(smollm2_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_model_dir)
    no_system = {"messages": CONVERSATION["messages"][1:]}  # SmolLM2's template inserts its default system prompt
    example, status = encode_record(no_system, tokenizer, tokenizer.chat_template)
    assert status == "ok"
    assert "You are a helpful AI assistant named SmolLM" in tokenizer.decode(example["input_ids"])
    assert targets_text(tokenizer, example) == "It is four.<|im_end|>\nSix.<|im_end|>\n"


def test_packed_rows_give_the_same_per_token_loss_as_separate_records(tiny_model_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    records = [{"messages": [{"role": "user", "content": f"Question {i}: " + "x " * i},
                             {"role": "assistant", "content": f"Answer {i}."}]} for i in range(1, 5)]
    examples = [encode_record(r, tiny_tokenizer, tiny_tokenizer.chat_template, train_on="all")[0] for r in records]
    rows = pack_examples(examples, max_seq_len=512)
    assert rows == [[0, 1, 2, 3]]
    with torch.no_grad():
        packed = collate_rows(examples, rows, 0)
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                              use_cache=False).logits[0]
        at = 0
        for example in examples:
            alone = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
            n = len(example["input_ids"])
            assert torch.allclose(packed_logits[at : at + n], alone, atol=1e-4)
            at += n
        separate = [float(token_loss_sum(TargetLoss(model), collate_rows(examples, [[i]], 0)))
                    for i in range(len(examples))]
        # per-example loss sums, read off the packed row's logits, match each example run alone
        packed_sums = []
        at = 0
        for example in examples:
            n = len(example["input_ids"])
            packed_sums.append(float(torch.nn.functional.cross_entropy(
                packed_logits[at : at + n], torch.tensor(example["labels"]), ignore_index=IGNORE_INDEX,
                reduction="sum")))
            at += n
        assert float(token_loss_sum(TargetLoss(model), packed)) == pytest.approx(sum(separate), abs=1e-3)
    assert packed_sums == pytest.approx(separate, abs=1e-4)


def test_packing_first_fit_respects_the_length_limit():
    examples = [{"input_ids": [0] * n} for n in (5, 4, 3, 2, 6)]
    rows = pack_examples(examples, max_seq_len=8)
    assert rows == [[0, 2], [1, 3], [4]]
    assert all(sum(len(examples[i]["input_ids"]) for i in row) <= 8 for row in rows)


def first_fit_by_scanning(lengths: list[int], max_seq_len: int) -> list[list[int]]:
    """The textbook first-fit: scan the rows in order for the first with room."""
    rows, free = [], []
    for index, length in enumerate(lengths):
        row = next((r for r, space in enumerate(free) if length <= space), None)
        if row is None:
            rows.append([index])
            free.append(max_seq_len - length)
        else:
            rows[row].append(index)
            free[row] -= length
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_packing_tree_makes_the_textbook_first_fit_choices(seed):
    rng = random.Random(seed)
    # short and long examples, some longer than a row (they get a row of their own), and an exact fit
    lengths = [rng.choice([rng.randint(1, 40), rng.randint(60, 140), 128]) for _ in range(rng.randint(1, 700))]
    examples = [{"input_ids": [0] * n} for n in lengths]
    assert pack_examples(examples, max_seq_len=128) == first_fit_by_scanning(lengths, 128)
    assert pack_examples([], max_seq_len=128) == []


def test_second_run_hits_the_tokenisation_cache_and_parallel_matches_serial(tmp_path, tiny_tokenizer, monkeypatch):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, [{"id": str(i), "messages": [{"role": "user", "content": f"q{i}"},
                                                   {"role": "assistant", "content": f"a{i}"}]} for i in range(9)])
    monkeypatch.setattr(data_module, "CHUNK_SIZE", 2)  # several chunks, so two processes share the work
    template, cache = tiny_tokenizer.chat_template, str(tmp_path / "cache")
    first, counts = load_tokenized(str(path), tiny_tokenizer, template, num_proc=2, cache_dir=cache, max_seq_len=64)
    assert counts["cache"] == "miss" and counts["ok"] == 9
    again, counts = load_tokenized(str(path), tiny_tokenizer, template, num_proc=2, cache_dir=cache, max_seq_len=64)
    assert counts["cache"] == "hit" and again == first
    serial, _ = data_module.tokenize_records(list(data_module.read_records(str(path))), tiny_tokenizer, template,
                                             max_seq_len=64)
    assert serial == first
    _, counts = load_tokenized(str(path), tiny_tokenizer, template, cache_dir=cache, max_seq_len=32)
    assert counts["cache"] == "miss"  # another option is another cache entry
    path.write_text(path.read_text().replace("q8", "q9"))
    _, counts = load_tokenized(str(path), tiny_tokenizer, template, num_proc=2, cache_dir=cache, max_seq_len=64)
    assert counts["cache"] == "miss"  # edited data is tokenised again


def test_max_examples_counts_only_records_that_fit(tmp_path, tiny_tokenizer):
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "long " * (60 * (i % 2))
                                                                                  + "short"}]} for i in range(10)]
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, rows)
    examples, counts = load_tokenized(str(path), tiny_tokenizer, tiny_tokenizer.chat_template, max_examples=3,
                                      cache_dir=str(tmp_path / "cache"), max_seq_len=40)
    assert len(examples) == 3 and counts["dropped"] == 5 and counts["ok"] == 5  # every odd record is too long
    with pytest.raises(InputError, match="training data not found"):
        load_tokenized(str(tmp_path / "nope.jsonl"), tiny_tokenizer, "", cache_dir=str(tmp_path / "cache"))
