"""Attention maps and token losses against transformers' own numbers; pages self-contained; training curves."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from oidkit.models.llama import load_llama
from oidkit.viz.attention import attention_maps, write_attention
from oidkit.viz.curves import write_curves
from oidkit.viz.tokens import token_losses, write_token_loss

TEXT = "The quick brown fox jumps over the lazy dog. 你好"


def embedded_json(page: str, element_id: str) -> object:
    match = re.search(f"<script type='application/json' id='{element_id}'>(.*?)</script>", page, re.S)
    return json.loads(match.group(1))


def assert_self_contained(page: str) -> None:
    """No resource is fetched: no external src/href, no URL at all."""
    assert not re.search(r"(src|href)=['\"](?!data:)", page)
    assert "http://" not in page and "https://" not in page


def test_attention_maps_equal_transformers_eager_attention(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_llama(tiny_model_path)
    tokens, maps = attention_maps(model, tokenizer, TEXT)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_path, attn_implementation="eager").eval()
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = torch.stack([a[0] for a in reference(torch.tensor([ids]), output_attentions=True).attentions])
    assert len(tokens) == len(ids)
    assert "".join(tokens) == TEXT
    assert torch.allclose(maps, expected, atol=1e-5)


def test_attention_page_and_pngs(tiny_model_path, tmp_path):
    result = write_attention(str(tiny_model_path), TEXT, tmp_path, max_tokens=8)
    assert result["tokens"] == 8 and len(result["pngs"]) == result["layers"] == 2
    assert all((tmp_path / f"attention_layer_{i:02d}.png").read_bytes()[:4] == b"\x89PNG" for i in range(2))
    page = (tmp_path / "attention.html").read_text()
    assert_self_contained(page)
    data = embedded_json(page, "data")
    assert len(data["maps"]) == 2 and len(data["maps"][0]) == 4  # layers x heads
    first_head = data["maps"][0][0]
    assert len(first_head) == 8 * 8
    assert first_head[0] == 255  # the first token can only attend to itself
    assert all(abs(sum(first_head[q * 8:(q + 1) * 8]) - 255) <= 8 for q in range(8))  # rows sum to 1 (quantised)


def test_token_losses_average_to_transformers_loss(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_llama(tiny_model_path)
    rows = token_losses(model, tokenizer, TEXT)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    ids = torch.tensor([tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = reference(ids, labels=ids).loss.item()
    losses = [r["loss"] for r in rows[1:]]
    assert rows[0]["loss"] is None
    assert math.isclose(sum(losses) / len(losses), expected, rel_tol=1e-5)


def test_token_page_from_a_record(tiny_model_path, tmp_path):
    data = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(3)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    result = write_token_loss(str(tiny_model_path), tmp_path / "out", data=str(data), index=1)
    page = (tmp_path / "out" / "tokens.html").read_text()
    assert_self_contained(page)
    scored = json.loads((tmp_path / "out" / "tokens.json").read_text())
    text = "".join(r["token"] for r in scored)
    assert text == "<|im_start|>user\nquestion 1<|im_end|>\n<|im_start|>assistant\nanswer 1<|im_end|>\n"
    assert page.count("<span") == result["tokens"] == len(scored)


def test_token_page_needs_exactly_one_input(tiny_model_path, tmp_path):
    from oidkit.errors import InputError

    with pytest.raises(InputError, match="either a text or --data"):
        write_token_loss(str(tiny_model_path), tmp_path)


def test_curves_from_a_metrics_csv(tmp_path):
    from oidkit.core.runs import MetricsLog

    log = MetricsLog(tmp_path / "run", tensorboard=False)
    for step in range(1, 11):
        log.log({"step": step, "split": "train", "loss": 5.0 - 0.3 * step, "lr": 1e-3, "grad_norm": 1.0,
                 "tokens_per_s": 1000.0})
    log.log({"step": 5, "split": "eval", "loss": 3.0})
    log.log({"step": 10, "split": "eval", "loss": 2.5})
    log.close()
    result = write_curves(tmp_path / "run" / "metrics.csv", tmp_path / "viz")
    assert result["steps"] == 10
    assert math.isclose(result["first_train_loss"], 4.7) and math.isclose(result["last_train_loss"], 2.0)
    assert result["best_eval_loss"] == 2.5 and math.isclose(result["best_eval_perplexity"], math.exp(2.5))
    page = (tmp_path / "viz" / "curves.html").read_text()
    assert "data:image/png;base64," in page
    assert_self_contained(page)
    assert (tmp_path / "viz" / "curves.png").read_bytes()[:4] == b"\x89PNG"
