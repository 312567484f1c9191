"""The decoding fast paths give what the plain ones give: incremental detokenisation in ``Completion`` (the text
after every token equals decoding all tokens at once) and the growing KV cache (the same logits as transformers'
``DynamicCache``, across the points where its room is reallocated)."""

from __future__ import annotations

import random

import pytest
import torch

from oidkit.models.tiny import build_tokenizer
from oidkit.serve.generation import Completion, SamplingParams, growing_cache

TEXTS = ["Hello, world! It's 3.14 degrees.", "你好，世界！今天天气很好。", "emoji 🙂 and ü, naïve café",
         " leading space, double  space and a newline\nhere."]


def metaspace_tokenizer():
    """A SentencePiece-style tokenizer (word-start marker ``▁``): decoding drops the space of the first token,
    so decoding a window of the last tokens differs from decoding them in context."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(TEXTS * 3, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "</s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")


def streamed_texts(tokenizer, tokens: list[int]) -> list[str]:
    """``Completion.text`` after each token, and checks it equals the decode of every token so far."""
    completion = Completion(tokenizer, [], SamplingParams(max_tokens=len(tokens) + 1), set(), None)
    texts = []
    for i, token in enumerate(tokens):
        completion.add(token)
        assert completion.text == tokenizer.decode(tokens[: i + 1], skip_special_tokens=True), (i, tokens)
        texts.append(completion.text)
    return texts


@pytest.mark.parametrize("make", [build_tokenizer, metaspace_tokenizer], ids=["byte-level", "metaspace"])
def test_incremental_text_equals_full_decode(make):
    tokenizer = make()
    for text in TEXTS:
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert streamed_texts(tokenizer, tokens)[-1] == tokenizer.decode(tokens, skip_special_tokens=True)
    # random ids: split characters, stray continuation bytes, special tokens in between
    rng = random.Random(0)
    for _ in range(20):
        streamed_texts(tokenizer, [rng.randrange(len(tokenizer)) for _ in range(30)])


def test_deltas_join_to_the_full_text_with_stop_strings():
    tokenizer = build_tokenizer()
    tokens = tokenizer("你好，世界！ STOP here", add_special_tokens=False)["input_ids"]
    completion = Completion(tokenizer, [], SamplingParams(max_tokens=100, stop=["STOP"]), set(), None)
    deltas = [d for d in map(completion.add, tokens) if d is not None]
    assert "".join(d.text for d in deltas) == "你好，世界！ " and deltas[-1].finish_reason == "stop"


@pytest.mark.real
def test_incremental_text_equals_full_decode_with_smollm2(smollm2_gguf):
    from oidkit.models import load_model

    _, tokenizer = load_model("smollm2-135m-instruct")
    for text in TEXTS:
        streamed_texts(tokenizer, tokenizer(text, add_special_tokens=False)["input_ids"])


def test_growing_cache_decodes_like_dynamic_cache(tiny_model):
    from transformers import DynamicCache

    model, _ = tiny_model
    torch.manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (2, 5))
    logits, caches = {}, {"dynamic": DynamicCache(), "growing": growing_cache()}
    with torch.no_grad():
        for name, cache in caches.items():
            tokens, steps = prompt, []
            for _ in range(80):  # 5 + 80 tokens: the room (2 x 5 + 64 = 74 columns) is outgrown once
                output = model(input_ids=tokens, cache=cache, use_cache=True)
                cache, tokens = output.cache, output.logits[:, -1:].argmax(dim=-1)
                steps.append(output.logits[:, -1])
            logits[name] = torch.stack(steps)
        grown = cache.layers[0]
    assert grown.room[0].shape[-2] > 74 and grown.keys.shape[-2] == 84
    torch.testing.assert_close(logits["growing"], logits["dynamic"], rtol=0, atol=1e-5)
