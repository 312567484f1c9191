"""GGUF export read back by transformers' own GGUF loader: same logits (per-quantisation tolerance), same tokenizer.

Tolerances on the tiny random models (|logits| < 1): f16 keeps 11 significant bits, measured max error
3e-4 -> 2e-3 allowed; q8_0 shares one scale per 32 weights, measured 6e-3 -> 3e-2 allowed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oidkit.models.export_gguf import export_gguf, permute_for_rope
from oidkit.models.tiny import build_tiny_model

TOLERANCE = {"f16": 2e-3, "q8_0": 3e-2}
TEXT = "Hello 你好 <|im_start|>user\nhow many? 12345<|im_end|>"


@pytest.fixture(scope="module")
def untied_model_path(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("untied") / "model", tie_word_embeddings=False, seed=2)


def load_gguf(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    return (AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(folder, gguf_file=name))


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
@pytest.mark.parametrize("which", ["tied", "untied"])
def test_transformers_loads_our_gguf_with_close_logits(quant, which, tiny_model_path, untied_model_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = tiny_model_path if which == "tied" else untied_model_path
    result = export_gguf(source, tmp_path / f"model-{quant}.gguf", quant=quant)
    model, tokenizer = load_gguf(tmp_path / f"model-{quant}.gguf")
    reference = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    reference_tokenizer = AutoTokenizer.from_pretrained(source)
    assert result["tensors"] == len(reference.state_dict()) - (which == "tied")  # a tied head is stored once
    assert model.config.tie_word_embeddings == (which == "tied")
    tokens = torch.randint(0, reference.config.vocab_size, (1, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        error = (model(tokens).logits - reference(tokens).logits).abs().max().item()
    assert error < TOLERANCE[quant]
    assert tokenizer(TEXT)["input_ids"] == reference_tokenizer(TEXT)["input_ids"]
    assert tokenizer.chat_template == reference_tokenizer.chat_template
    assert (tokenizer.bos_token, tokenizer.eos_token) == (reference_tokenizer.bos_token, reference_tokenizer.eos_token)


def test_q8_0_is_about_half_of_f16(tiny_model_path, tmp_path):
    f16 = export_gguf(tiny_model_path, tmp_path / "a.gguf", quant="f16")["bytes"]
    q8 = export_gguf(tiny_model_path, tmp_path / "b.gguf", quant="q8_0")["bytes"]
    assert 0.45 < q8 / f16 < 0.65  # 8.5 bits per weight against 16, plus shared metadata


def test_rope_permutation_interleaves_each_heads_halves():
    # one head of 4 rotary channels: HF rows (a0, a1, b0, b1) pair a_i with b_i; llama.cpp wants a0 b0 a1 b1
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)  # two heads
    assert permute_for_rope(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_unknown_quantisation_is_a_user_error(tiny_model_path, tmp_path):
    from oidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="f16 or q8_0"):
        export_gguf(tiny_model_path, tmp_path / "x.gguf", quant="q4_k")


@pytest.mark.real
def test_smollm2_q8_0_export_keeps_its_answers(smollm2_gguf, tmp_path):
    from transformers import AutoModelForCausalLM

    from oidkit.models import resolve_model

    folder = resolve_model("smollm2-135m-instruct")
    export_gguf("smollm2-135m-instruct", tmp_path / "smollm2-q8_0.gguf", quant="q8_0")
    model, tokenizer = load_gguf(tmp_path / "smollm2-q8_0.gguf")
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    tokens = prompt["input_ids"]
    with torch.no_grad():
        ours, expected = model(tokens).logits.log_softmax(-1), reference(tokens).logits.log_softmax(-1)
    kl = (expected.exp() * (expected - ours)).sum(-1).mean().item()
    assert kl < 0.02  # KL(source || q8_0) per position; measured 0.003 nats
    answer = model.generate(tokens, max_new_tokens=12, do_sample=False)
    assert answer.tolist() == reference.generate(tokens, max_new_tokens=12, do_sample=False).tolist()
    assert "Paris" in tokenizer.decode(answer[0, tokens.shape[1]:])
