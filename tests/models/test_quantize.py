"""int8 dynamic quantisation: a quarter of the Linear memory, logits close, perplexity nearly unchanged."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oidkit.models.llama import LlamaModel
from oidkit.models.quantize import (
    DynamicInt8Linear,
    Int8Linear,
    calibration_tokens,
    linear_weight_bytes,
    quantize_int8,
    smooth_activations,
)


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


def _tokens(vocab_size: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab_size, (1, length), generator=torch.Generator().manual_seed(seed))


def _llama(tiny_model_path, implementation: str) -> tuple[torch.nn.Module, int, int]:
    """(model whose call returns logits, vocabulary size, layer count), ours or transformers'."""
    from transformers import AutoModelForCausalLM

    if implementation == "ours":
        model = LlamaModel.from_pretrained(tiny_model_path)
        return model, model.config.vocab_size, model.config.n_layers
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    return model, model.config.vocab_size, model.config.num_hidden_layers


def _logits(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(tokens)
    return getattr(out, "logits", out)


@pytest.mark.parametrize("implementation", ["ours", "transformers"])
def test_smoothing_is_an_exact_identity_in_float32(tiny_model_path, implementation):
    model, vocab_size, n_layers = _llama(tiny_model_path, implementation)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    text = _tokens(vocab_size, 24, 1)
    reference = _logits(model, text)
    assert smooth_activations(model, _tokens(vocab_size, 48, 0)) == 2 * n_layers  # attention and MLP inputs
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert sum("norm" in name for name in changed) == 2 * n_layers
    assert len(changed) == 7 * n_layers  # two norms, then q, k, v and gate, up after them
    assert torch.allclose(_logits(model, text), reference, atol=1e-5)  # on other text than the calibration


def test_smoothing_makes_dynamic_int8_closer_when_a_channel_is_an_outlier_in_every_token(tiny_model_path):
    model, vocab_size, _ = _llama(tiny_model_path, "ours")
    with torch.no_grad():  # LLM.int8()'s pattern: a few input channels large in every token
        for block in model.layers:
            block.attention_norm.weight[:4] = 60.0
            block.ffn_norm.weight[:4] = 60.0
    text = _tokens(vocab_size, 32, 1)
    reference = _logits(model, text)
    plain = (_logits(quantize_int8(model, "dynamic"), text) - reference).abs().mean()
    smoothed_model = quantize_int8(model, "dynamic", calibration=_tokens(vocab_size, 64, 0))
    smoothed = (_logits(smoothed_model, text) - reference).abs().mean()
    assert smoothed < 0.5 * plain
    assert torch.equal(model.layers[0].attention_norm.weight[:4], torch.full((4,), 60.0))  # the original kept


def test_smoothing_is_undone_when_the_norm_is_not_weight_times_normalised(tiny_model_path):
    model, vocab_size, _ = _llama(tiny_model_path, "ours")

    class OnePlusWeightNorm(torch.nn.Module):  # Gemma's RMSNorm scales by (1 + weight): dividing weight is wrong
        def __init__(self, norm):
            super().__init__()
            self.norm, self.weight = norm, torch.nn.Parameter(norm.weight.detach().clone())

        def forward(self, x):
            return self.norm(x) / self.norm.weight * (1 + self.weight)

    model.layers[0].ffn_norm = OnePlusWeightNorm(model.layers[0].ffn_norm)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    assert smooth_activations(model, _tokens(vocab_size, 48, 0)) == 0
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())


def test_packaged_calibration_text_tokenises(tiny_model_path):
    from transformers import AutoTokenizer

    tokens = calibration_tokens(AutoTokenizer.from_pretrained(tiny_model_path))
    assert tokens.shape[0] == 1 and tokens.shape[1] > 500


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
        smoothed = quantize_int8(model, "dynamic", calibration_tokens(tokenizer))(tokens, labels=tokens).loss.item()
    assert abs(math.exp(weight_only - loss) - 1) < 0.02  # measured about 1%
    assert abs(math.exp(dynamic - loss) - 1) < 0.05  # per-token scales; one per batch measured +18%
    assert abs(math.exp(smoothed - loss) - 1) < 0.02  # SmoothQuant on the packaged text: the goal of issue 18


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
    dynamic, _ = load_model(f"{tiny_model_path}@int8-dynamic")  # smoothed on the packaged text first
    assert not torch.equal(dynamic.model.layers[0].input_layernorm.weight, base.model.layers[0].input_layernorm.weight)
