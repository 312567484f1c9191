"""The training loss next to the model: summed next-token cross-entropy on the positions that count.

Computing ``logits = head(hidden)`` for every position and then ignoring most of them (prompts, padding)
wastes the largest matmul of a small model and a (tokens, vocab) float tensor, e.g. 2048 x 49152 x 4 bytes
= 400 MB for SmolLM2 at batch 4 x 512. Here the head runs only on positions with a label, in chunks of
rows, and for a plain ``nn.Linear`` head the gradient is computed chunk by chunk during the forward pass
(a fused linear cross-entropy): no logits tensor outlives its chunk and backward only scales the result.

Labels are pre-shifted (``labels[t]`` is the token after ``t``) and ``IGNORE_INDEX`` marks positions
without a target, as ``core.chat`` and ``train.packing`` build them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oidkit.core.chat import IGNORE_INDEX

CHUNK_ROWS = 1024  # rows of logits alive at once: 1024 x 49152 fp32 = 200 MB for SmolLM2


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """``sum(cross_entropy(hidden @ weight.T, labels))`` with both gradients computed in forward, chunk by chunk."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                chunk_rows: int) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = None
        matrix = weight.to(hidden.dtype)  # a copy only under autocast
        for start in range(0, hidden.shape[0], chunk_rows):
            h, y = hidden[start:start + chunk_rows], labels[start:start + chunk_rows]
            logits = (h @ matrix.T).float()
            # softmax in place in the logits' memory (logsumexp would allocate two more tensors this size)
            label_logits = logits.gather(1, y[:, None])[:, 0]
            row_max = logits.amax(-1)
            probs = logits.sub_(row_max[:, None]).exp_()
            row_sum = probs.sum(-1)
            total += (row_sum.log() + row_max - label_logits).sum()
            # d loss / d logits = softmax - one_hot(label)
            grad = probs.div_(row_sum[:, None])
            grad[torch.arange(len(y), device=y.device), y] -= 1
            grad = grad.to(h.dtype)
            torch.mm(grad, matrix, out=grad_hidden[start:start + chunk_rows])
            if ctx.needs_input_grad[1]:
                part = grad.T @ h
                grad_weight = part.float() if grad_weight is None else grad_weight.add_(part)
        if ctx.needs_input_grad[1] and grad_weight is None:  # no labelled position at all
            grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple:
        grad_hidden, grad_weight = ctx.saved_tensors
        scaled_weight = None if grad_weight is None else (grad_weight * grad_total).to(ctx.weight_dtype)
        return grad_hidden * grad_total.to(grad_hidden.dtype), scaled_weight, None, None


def target_cross_entropy(hidden: torch.Tensor, head: nn.Module, labels: torch.Tensor,
                         chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """Summed cross-entropy of ``head(hidden)`` against ``labels`` over the positions with a label.

    ``hidden``: (..., dim) final hidden states; ``labels``: (...) with ``IGNORE_INDEX`` where nothing counts.
    The head runs only on the labelled positions, ``chunk_rows`` at a time.
    """
    keep = labels != IGNORE_INDEX
    hidden, labels = hidden[keep], labels[keep]
    plain = type(head) is nn.Linear and head.bias is None
    if plain and torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad):
        return _FusedLinearCrossEntropy.apply(hidden, head.weight, labels, chunk_rows)
    # no gradient wanted (evaluation), or a head that is not a plain matrix (e.g. LoRA on the head)
    return sum((F.cross_entropy(head(hidden[s:s + chunk_rows]).float(), labels[s:s + chunk_rows], reduction="sum")
                for s in range(0, len(labels), chunk_rows)), torch.zeros((), device=hidden.device))


class TargetLoss(nn.Module):
    """Any causal LM the trainer handles (transformers, peft-wrapped, our Llama in ``NextTokenView``) as a
    module whose forward returns the summed loss: ``TargetLoss(model)(input_ids, position_ids, labels)``.

    The loss is computed inside ``forward`` so a ``DistributedDataParallel`` wrapper around this module sees
    the whole step. Models that define ``target_loss`` (our Llama) compute it themselves; transformers models
    give their decoder's final hidden states to :func:`target_cross_entropy` with their output embeddings.
    No ``attention_mask`` is passed: the restarting ``position_ids`` mark where packed examples begin (see
    ``train.packing``), and ``use_cache=False`` keeps transformers' packed-sequence detection on.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # peft
        if hasattr(base, "target_loss"):
            return base.target_loss(input_ids, position_ids, labels)
        if getattr(base.config, "final_logit_softcapping", None):  # the head is more than a matmul (Gemma 2)
            logits = base(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
            return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
                                   reduction="sum")
        hidden = base.get_decoder()(input_ids=input_ids, position_ids=position_ids, use_cache=False)
        return target_cross_entropy(hidden.last_hidden_state, base.get_output_embeddings(), labels)
