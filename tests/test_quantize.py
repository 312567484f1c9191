"""int8 dynamic quantisation: a quarter of the Linear memory, logits close, perplexity nearly unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from oidkit.models.llama import LlamaModel
from oidkit.models.quantize import linear_weight_bytes, quantize_int8


def test_int8_copy_of_our_model_is_close_and_four_times_smaller(tiny_model_path):
    model = LlamaModel.from_pretrained(tiny_model_path)
    quantized = quantize_int8(model)
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())  # the original is left untouched
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert linear_weight_bytes(quantized) < linear_weight_bytes(model) / 3.5
    tokens = torch.randint(0, model.config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference, approximate = model(tokens), quantized(tokens)
    # logits here are ~0.5; int8 rounding of weights and activations moves them by about 1%
    assert (approximate - reference).abs().max() < 0.05 * reference.abs().max()


def test_int8_transformers_model_generates(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model = quantize_int8(AutoModelForCausalLM.from_pretrained(tiny_model_path))
    out = model.generate(torch.tensor([[1, 5, 9]]), max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 8)


@pytest.mark.real
def test_smollm2_int8_perplexity_within_five_percent(smollm2_gguf, shared_data):
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oidkit.models import resolve_model

    folder = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    rows = [json.loads(line) for line in (shared_data / "gsm8k_test.jsonl").open()][:4]
    text = "\n\n".join(f"{r['question']}\n{r['answer']}" for r in rows)
    tokens = tokenizer(text, return_tensors="pt")["input_ids"][:, :512]
    with torch.no_grad():
        loss = model(tokens, labels=tokens).loss.item()
        loss_int8 = quantize_int8(model)(tokens, labels=tokens).loss.item()
    assert abs(math.exp(loss_int8) / math.exp(loss) - 1) < 0.05
