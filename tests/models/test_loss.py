"""The loss next to the model equals the loss on full logits: values and gradients, ours and transformers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from oidkit.core.chat import IGNORE_INDEX
from oidkit.models.llama import LlamaModel, NextTokenView
from oidkit.models.loading import quiet_peft
from oidkit.models.loss import TargetLoss, target_cross_entropy


def full_logits_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss as the loop computed it before: head on every position, -100 ignored."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="sum")


def packed_batch(vocab: int, seed: int = 0) -> dict:
    """Two rows: three packed examples, then one example and padding; about half the positions labelled."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (2, 24), generator=g)
    position_ids = torch.cat([torch.arange(8), torch.arange(10), torch.arange(6),
                              torch.arange(15), torch.zeros(9, dtype=torch.long)]).view(2, 24)
    labels = torch.randint(0, vocab, (2, 24), generator=g)
    labels[torch.rand(2, 24, generator=g) < 0.5] = IGNORE_INDEX
    labels[1, 15:] = IGNORE_INDEX  # padding
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}


@pytest.mark.parametrize("chunk_rows", [1, 5, 4096])
@pytest.mark.parametrize("weight_grad", [True, False])
def test_fused_cross_entropy_equals_full_logits(chunk_rows, weight_grad):
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 7, 16, generator=g, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=False).requires_grad_(weight_grad)
    labels = torch.randint(0, 50, (3, 7), generator=g)
    labels[0, :4] = IGNORE_INDEX
    scale = 0.37  # the loop divides by the target count: backward must carry the incoming gradient
    fused = target_cross_entropy(hidden, head, labels, chunk_rows)
    (scale * fused).backward()
    ours, ours_weight = hidden.grad.clone(), head.weight.grad
    hidden.grad, head.weight.grad = None, None
    expected = full_logits_loss(head(hidden), labels)
    (scale * expected).backward()
    no_grad_path = target_cross_entropy(hidden.detach(), head, labels, chunk_rows)  # evaluation
    assert no_grad_path.item() == pytest.approx(expected.item(), rel=1e-5)
    assert fused.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(ours, hidden.grad, rtol=1e-5, atol=1e-6)
    if weight_grad:
        torch.testing.assert_close(ours_weight, head.weight.grad, rtol=1e-5, atol=1e-6)
    else:
        assert ours_weight is None


def test_fused_cross_entropy_without_any_label_gives_zero_loss_and_zero_gradients():
    hidden = torch.randn(2, 5, 16, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=False)
    loss = target_cross_entropy(hidden, head, torch.full((2, 5), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0
    assert not hidden.grad.any() and not head.weight.grad.any() and head.weight.grad.dtype == torch.float32


def assert_same_loss_and_grads(loss_model: torch.nn.Module, logits_of, batch: dict) -> None:
    params = [p for p in loss_model.parameters() if p.requires_grad]
    loss = loss_model(**batch)
    loss.backward()
    ours = [p.grad.clone() for p in params]
    loss_model.zero_grad()
    expected = full_logits_loss(logits_of(batch), batch["labels"])
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for mine, theirs in zip(ours, [p.grad for p in params], strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_transformers_model_loss_equals_full_logits(tiny_model_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    batch = packed_batch(model.config.vocab_size)
    assert_same_loss_and_grads(TargetLoss(model), lambda b: model(
        input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=False).logits, batch)


# lm_head is tied to the embeddings here on purpose: the fused loss must follow an adapter on the tied head
@pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`")
def test_lora_model_loss_equals_full_logits(tiny_model_path):
    from peft import LoraConfig, get_peft_model

    with quiet_peft():
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_path),
                               LoraConfig(r=4, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False))
    batch = packed_batch(model.config.vocab_size, seed=2)
    assert_same_loss_and_grads(TargetLoss(model), lambda b: model(
        input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=False).logits, batch)


def test_our_llama_loss_equals_full_logits(tiny_model_path):
    model = NextTokenView(LlamaModel.from_pretrained(tiny_model_path))
    batch = packed_batch(model.model.config.vocab_size, seed=3)
    assert_same_loss_and_grads(TargetLoss(model), lambda b: model(b["input_ids"], b["position_ids"]).logits, batch)
