"""Float Linear layers with their weights stored transposed, for decoding one token at a time on CPU.

A decode step at batch 1 multiplies one row by every weight matrix: a matrix-vector product that should
run at the speed of reading the weights. With PyTorch's layout, ``(out, in)``, ``F.linear`` computes each
output as a dot product over a row (MKL's transposed GEMV, horizontal sums per output); stored ``(in, out)``,
``x @ w_t`` adds rows of the matrix scaled by each input (one contiguous stream, vectorised across outputs).
On this repository's AVX-512 CPU, one thread, SmolLM2-135M shapes, the second reads the weights 1.3-1.7x
faster (docs/performance.md); a prefill of many rows is a GEMM either way and runs at the same speed.
The products are the same sums in another order, so outputs match ``nn.Linear`` to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn


class TransposedLinear(nn.Module):
    """``nn.Linear`` with the weight kept as ``weight_t``, ``(in_features, out_features)``, contiguous."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.register_buffer("weight_t", linear.weight.detach().t().contiguous())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight_t
        return out if self.bias is None else out + self.bias


def transpose_linears(model: nn.Module) -> nn.Module:
    """Replace every float ``nn.Linear`` of ``model`` with a ``TransposedLinear``, in place; returns ``model``.

    Other layers (our int8 ones, embeddings, norms) stay. A head tied to the embedding gets its own
    transposed copy (SmolLM2-135M: +113 MB on 538 MB of Linear weights) while the embedding keeps its rows.
    """
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear) and child.weight.is_floating_point():
                setattr(parent, name, TransposedLinear(child))
    return model
