"""int8 dynamic quantisation: a quarter of the Linear memory, logits close, perplexity nearly unchanged."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oidkit.models.llama import LlamaModel
from oidkit.models.quantize import DynamicInt8Linear, Int8Linear, linear_weight_bytes, quantize_int8


def test_weight_only_int8_is_close_and_four_times_smaller(tiny_model_path):
    model = LlamaModel.from_pretrained(tiny_model_path)
    quantized = quantize_int8(model)
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())  # the original is left untouched
    assert not any(isinstance(m, torch.nn.Linear) for m in quantized.modules())
    assert isinstance(quantized.layers[0].attention.wq, Int8Linear)
    assert linear_weight_bytes(quantized) < linear_weight_bytes(model) / 3.5
    tokens = torch.randint(0, model.config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference, approximate = model(tokens), quantized(tokens)
    # rounding to 1 of 255 levels per row moves each weight by at most scale/2: logits move by about 0.5%
    assert (approximate - reference).abs().max() < 0.02 * reference.abs().max()


def test_int8_linear_is_exact_when_weights_are_multiples_of_the_row_scale():
    linear = torch.nn.Linear(4, 2, bias=True)
    with torch.no_grad():  # each row's largest |w| is 127 steps, so every weight is a whole number of steps
        linear.weight.copy_(torch.tensor([[127.0, -3.0, 0.0, 5.0], [-64.0, 127.0, 1.0, 2.0]])
                            * torch.tensor([[0.01], [0.002]]))
    x = torch.randn(3, 4)
    assert torch.allclose(Int8Linear(linear)(x), linear(x), atol=1e-6)


def test_dynamic_int8_layer_equals_the_dequantised_matmul_for_one_row_and_many():
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=True)
    layer = DynamicInt8Linear(linear)
    weight = layer.weight_int8_t.t().float() * layer.scale[:, None]  # the dequantised weight
    x = torch.randn(2, 5, 96)
    x[0, 0, 3] = 40.0  # an outlier channel in one token must not flatten the other tokens
    scale = x.abs().amax(dim=-1, keepdim=True) / 127
    reference = F.linear(torch.round(x / scale) * scale, weight, linear.bias)  # per-token int8 activations
    assert torch.allclose(layer(x), reference, atol=1e-4)
    one = x[1, 2:3]  # a single row goes through fbgemm (asymmetric uint8): within one activation step
    step = float((one.max() - one.min()) / 255)
    bound = step * weight.abs().sum(dim=1).max()
    assert (layer(one) - F.linear(one, weight, linear.bias)).abs().max() < bound
    assert (layer(x) - linear(x)).abs().max() < 0.05 * linear(x).abs().max()


def test_dynamic_int8_quantises_every_linear_and_stays_close(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    quantized = quantize_int8(model, mode="dynamic")
    assert not any(isinstance(m, torch.nn.Linear) for m in quantized.modules())
    assert linear_weight_bytes(quantized) < linear_weight_bytes(model) / 3.5
    tokens = torch.randint(0, model.config.vocab_size, (1, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference, approximate = model(tokens).logits, quantized(tokens).logits
    assert (approximate - reference).abs().max() < 0.03 * reference.abs().max()


def test_int8_transformers_model_generates(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    prompt = torch.tensor([[1, 5, 9]])
    expected = model.generate(prompt, max_new_tokens=5, do_sample=False)
    assert quantize_int8(model).generate(prompt, max_new_tokens=5, do_sample=False).tolist() == expected.tolist()


@pytest.mark.real
def test_smollm2_int8_perplexity_change(smollm2_gguf, shared_data):
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
        weight_only = quantize_int8(model)(tokens, labels=tokens).loss.item()
        dynamic = quantize_int8(model, mode="dynamic")(tokens, labels=tokens).loss.item()
    assert abs(math.exp(weight_only - loss) - 1) < 0.02  # measured about 1%
    assert abs(math.exp(dynamic - loss) - 1) < 0.05  # per-token scales; one per batch measured +18%


def test_int8_suffix_loads_a_quantised_model_everywhere_a_model_is_named(tiny_model_path):
    import torch

    from oidkit.models import load_model
    from oidkit.serve.generation import served_model_name

    base, tokenizer = load_model(tiny_model_path)
    quantised, _ = load_model(f"{tiny_model_path}@int8")
    assert type(quantised.model.layers[0].mlp.down_proj) is not torch.nn.Linear  # weights replaced by int8 ones
    ids = tokenizer("hello world", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(base(ids).logits, quantised(ids).logits, atol=0.05)
    assert served_model_name(f"{tiny_model_path}@int8") == "model@int8"
