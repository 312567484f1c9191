"""Linear layers stored transposed for decoding: the same outputs as ``nn.Linear`` and, on a whole model,
the same greedy tokens as transformers ``generate`` on the untouched model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from oidkit.models.quantize import Int8Linear, linear_weight_bytes, quantize_int8
from oidkit.models.transposed import TransposedLinear, transpose_linears


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 24), (3, 5, 24), (24,)], ids=["one token", "batch", "vector"])
def test_transposed_linear_computes_what_linear_computes(bias, shape):
    torch.manual_seed(0)
    linear = nn.Linear(24, 40, bias=bias)
    x = torch.randn(*shape)
    transposed = TransposedLinear(linear)
    assert transposed.weight_t.shape == (24, 40) and transposed.weight_t.is_contiguous()
    torch.testing.assert_close(transposed(x), linear(x), rtol=1e-5, atol=1e-6)


def test_transpose_linears_replaces_every_float_linear_and_keeps_the_rest(tiny_model):
    model = copy.deepcopy(tiny_model[0])
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    bytes_before = linear_weight_bytes(model)
    assert transpose_linears(model) is model
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert sum(isinstance(m, TransposedLinear) for m in model.modules()) == linears
    assert linear_weight_bytes(model) == bytes_before  # the bandwidth bound counts the same bytes
    int8 = transpose_linears(quantize_int8(tiny_model[0]))  # our int8 layers are not float Linear layers
    assert any(isinstance(m, Int8Linear) for m in int8.modules())
    assert not any(isinstance(m, TransposedLinear) for m in int8.modules())
