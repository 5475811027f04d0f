"""The matrix-form convolutions (the U-Net's innermost, the PatchGAN's score layer) compute what torch's convolutions compute.

Whole networks with them swapped in: tests/unit/test_cpu_kernels.py.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.nn import gemm_conv
from pix2pix.nn.gemm_conv import DownConv, ScoreConv, UpConv

SHAPES = [(1, 8, 6, 2, 2, False), (2, 8, 6, 4, 2, True), (3, 5, 7, 2, 6, True), (1, 6, 4, 3, 5, False)]


@pytest.mark.parametrize("batch, in_channels, out_channels, height, width, bias", SHAPES)
@pytest.mark.parametrize("kind", ["down", "up"])
def test_matrix_form_gradients_and_values_match_torch(kind, batch, in_channels, out_channels, height, width, bias):
    """gradcheck in float64 proves the hand-written backward; the values equal torch's own op."""
    torch.manual_seed(0)
    module, function, stock = (
        (DownConv, gemm_conv._DownMatmul, nn.Conv2d.forward) if kind == "down" else (UpConv, gemm_conv._UpMatmul, nn.ConvTranspose2d.forward)
    )
    layer = module(in_channels, out_channels, bias=bias).double()
    x = torch.randn(batch, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(function.apply, (x, layer.weight, layer.bias))
    torch.testing.assert_close(function.apply(x, layer.weight, layer.bias), stock(layer, x))


def test_float32_layers_take_the_matrix_form_only_when_small(monkeypatch):
    calls, matrix_form = [], gemm_conv._UpMatmul.apply
    monkeypatch.setattr(gemm_conv._UpMatmul, "apply", lambda x, *args: calls.append(tuple(x.shape)) or matrix_form(x, *args))
    up = UpConv(8, 4)
    up(torch.randn(1, 8, 4, 4))  # 16 positions
    up(torch.randn(1, 8, 8, 8))  # 64 positions
    up(torch.randn(2, 8, 8, 8))  # 128 positions: torch's own op
    UpConv(8, 4).double()(torch.randn(1, 8, 4, 4).double())  # float64: torch's own op
    with torch.autocast("cpu", dtype=torch.bfloat16):
        up(torch.randn(1, 8, 4, 4))  # autocast: torch's own op, in bfloat16
    UpConv(8, 4).to(memory_format=torch.channels_last)(torch.randn(1, 8, 4, 4))  # channels_last weights: torch's own op
    assert calls == [(1, 8, 4, 4), (1, 8, 8, 8)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace announces its retirement
def test_state_dict_is_torch_s_and_tracing_keeps_the_convolution_op():
    """Checkpoints stay loadable into plain nn layers; exported graphs hold ordinary convolutions."""
    down = DownConv(4, 6)
    plain = nn.Conv2d(4, 6, 4, 2, 1)
    plain.load_state_dict(down.state_dict())
    traced = torch.jit.trace(down, torch.randn(1, 4, 2, 2))
    assert "aten::_convolution" in str(traced.inlined_graph)
    assert "unfold" not in str(traced.inlined_graph) and "im2col" not in str(traced.inlined_graph)


@pytest.mark.parametrize("batch, channels, height, width, bias", [(1, 5, 3, 3, True), (2, 4, 6, 9, False), (3, 7, 2, 2, True)])
def test_score_layer_values_and_gradients_match_torch(batch, channels, height, width, bias):
    """In float64, the tap products give torch's scores and all three gradients."""
    torch.manual_seed(0)
    layer = ScoreConv(channels, bias=bias).double()
    x = torch.randn(batch, channels, height, width, dtype=torch.float64, requires_grad=True)
    inputs = (x, layer.weight) + ((layer.bias,) if bias else ())
    ours = gemm_conv.score_conv(x, layer.weight, layer.bias)
    theirs = F.conv2d(x, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(ours, theirs)
    grad = torch.randn_like(ours)
    for mine, stock in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(theirs, inputs, grad)):
        torch.testing.assert_close(mine, stock)


def test_float32_score_layers_take_the_tap_products_only_when_large(monkeypatch):
    calls, tap_products = [], gemm_conv.score_conv
    monkeypatch.setattr(gemm_conv, "score_conv", lambda x, *args: calls.append(tuple(x.shape)) or tap_products(x, *args))
    layer = ScoreConv(8)
    layer(torch.randn(1, 8, 11, 11))  # 100 output positions
    layer(torch.randn(2, 8, 7, 7))  # 72: torch's own op
    ScoreConv(8).double()(torch.randn(1, 8, 11, 11).double())  # float64: torch's own op
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(torch.randn(1, 8, 11, 11))  # autocast: torch's own op
    assert calls == [(1, 8, 11, 11)]
    nn.Conv2d(8, 1, 4, 1, 1).load_state_dict(layer.state_dict())  # the state dict is torch's layer's
