"""Our readable Llama against transformers' LlamaForCausalLM: same logits, same greedy text, packing, KV cache."""

from __future__ import annotations

import pytest
import torch

from oidkit.models.llama import KVCache, LlamaConfig, LlamaModel
from oidkit.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def untied_model_path(tmp_path_factory):
    """A tiny random Llama with a separate output head and more query heads per key/value head (GQA 4:1)."""
    return build_tiny_model(tmp_path_factory.mktemp("untied") / "model", tie_word_embeddings=False,
                            num_heads=8, num_kv_heads=2, seed=1)


def load_both(path):
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return reference, LlamaModel.from_pretrained(path)


@pytest.mark.parametrize("which", ["tied", "untied"])
def test_logits_equal_transformers(which, tiny_model_path, untied_model_path):
    path = tiny_model_path if which == "tied" else untied_model_path
    reference, ours = load_both(path)
    assert ours.config.tie_embeddings == (which == "tied")
    tokens = torch.randint(0, ours.config.vocab_size, (2, 37), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(tokens).logits
        got = ours(tokens)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


@pytest.mark.parametrize("which", ["tied", "untied"])
def test_greedy_generation_equals_transformers(which, tiny_model_path, untied_model_path):
    path = tiny_model_path if which == "tied" else untied_model_path
    reference, ours = load_both(path)
    prompt = torch.tensor([[5, 17, 42, 99, 7]])
    expected = reference.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=None)
    got = ours.generate(prompt, max_new_tokens=20, eos_token_id=[])
    assert got.tolist() == expected.tolist()


def test_kv_cache_decoding_equals_full_forward(tiny_model_path):
    ours = LlamaModel.from_pretrained(tiny_model_path)
    tokens = torch.randint(0, ours.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(3))
    cache = KVCache(ours.config, 1, 12, dtype=torch.float32)
    with torch.no_grad():
        full = ours(tokens)
        first = ours(tokens[:, :5], cache=cache)  # prefill
        chunk = ours(tokens[:, 5:9], cache=cache)  # several tokens on top of a cache: explicit offset mask
        steps = [ours(tokens[:, i:i + 1], cache=cache) for i in range(9, 12)]
    assert torch.allclose(torch.cat([first, chunk, *steps], dim=1), full, atol=1e-5)


def test_packed_records_equal_records_alone(tiny_model_path):
    ours = LlamaModel.from_pretrained(tiny_model_path)
    generator = torch.Generator().manual_seed(4)
    records = [torch.randint(0, ours.config.vocab_size, (n,), generator=generator) for n in (7, 3, 11)]
    packed = torch.cat(records)[None]
    positions = torch.cat([torch.arange(len(r)) for r in records])[None]
    segments = torch.cat([torch.full((len(r),), i) for i, r in enumerate(records)])[None]
    with torch.no_grad():
        together = ours(packed, position_ids=positions, segment_ids=segments)
        alone = torch.cat([ours(r[None]) for r in records], dim=1)
        naive = ours(packed)  # without the block-diagonal mask, later records see earlier ones
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(naive, alone, atol=1e-3)


def test_attention_probabilities_are_causal_and_sum_to_one(tiny_model_path):
    ours = LlamaModel.from_pretrained(tiny_model_path)
    tokens = torch.arange(10)[None]
    attentions: list = []
    with torch.no_grad():
        with_maps = ours(tokens, attentions=attentions)
        fused = ours(tokens)
    assert torch.allclose(with_maps, fused, atol=1e-5)  # explicit softmax path == SDPA path
    assert len(attentions) == ours.config.n_layers
    probs = attentions[0][0]  # (heads, T, T)
    assert probs.shape == (ours.config.n_heads, 10, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(ours.config.n_heads, 10), atol=1e-5)
    assert torch.count_nonzero(torch.triu(probs, diagonal=1)) == 0


def test_save_pretrained_round_trips_through_transformers(tmp_path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    ours = LlamaModel(LlamaConfig(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=1, intermediate_size=64,
                                  rope_theta=500000.0, rms_norm_eps=1e-6, tie_embeddings=False,
                                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                                  max_seq_len=128)).eval()
    ours.save_pretrained(tmp_path)
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    tokens = torch.randint(0, 97, (1, 64))  # longer than the "original" 16 positions: the llama3 ramp matters
    with torch.no_grad():
        assert torch.allclose(ours(tokens), reference(tokens).logits, atol=1e-4)
    assert torch.equal(LlamaModel.from_pretrained(tmp_path).output.weight, ours.output.weight)


@pytest.mark.real
def test_smollm2_logits_and_generation_equal_transformers(smollm2_gguf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oidkit.models import resolve_model

    folder = resolve_model("smollm2-135m-instruct")  # the packaged GGUF (smollm2_gguf), dequantised once and cached
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ours = LlamaModel.from_pretrained(folder)
    assert (ours.config.n_heads, ours.config.n_kv_heads, ours.config.tie_embeddings) == (9, 3, True)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    tokens = prompt["input_ids"]
    with torch.no_grad():
        assert torch.allclose(ours(tokens), reference(tokens).logits, atol=1e-4)
    expected = reference.generate(tokens, max_new_tokens=16, do_sample=False)
    assert ours.generate(tokens, max_new_tokens=16).tolist() == expected.tolist()
