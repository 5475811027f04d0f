"""The PatchGAN's Winograd convolution computes what torch's 4x4 stride-1 convolution computes.

The whole discriminator with it swapped in: tests/unit/test_cpu_kernels.py.
"""

import pytest
import torch
import torch.nn.functional as F

from pix2pix.nn import winograd
from pix2pix.nn.winograd import PatchConv


@pytest.mark.parametrize("batch, in_channels, out_channels, height, width, bias", [(1, 3, 2, 2, 2, True), (2, 4, 3, 7, 5, False), (1, 2, 5, 9, 10, True)])
def test_gradients_and_values_match_torch(batch, in_channels, out_channels, height, width, bias):
    """gradcheck in float64 proves the hand-written backward (tile scatter, weight and output maps)."""
    torch.manual_seed(0)
    layer = PatchConv(in_channels, out_channels, bias=bias).double()
    x = torch.randn(batch, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(winograd._WinogradConv.apply, (x, layer.weight, layer.bias))
    torch.testing.assert_close(winograd._WinogradConv.apply(x, layer.weight, layer.bias), F.conv2d(x, layer.weight, layer.bias, padding=1))


def test_float32_rounding_stays_near_torch_s():
    """At the 256 px discriminator's shape (256 -> 512 channels, 31 x 31 out), against float64."""
    torch.manual_seed(0)
    x = torch.randn(1, 256, 32, 32, dtype=torch.float64)
    weight = torch.randn(512, 256, 4, 4, dtype=torch.float64) * 0.02
    grad = torch.randn(1, 512, 31, 31, dtype=torch.float64)
    x.requires_grad_(), weight.requires_grad_()
    exact = F.conv2d(x, weight, padding=1)
    exact_grads = torch.autograd.grad(exact, (x, weight), grad)
    x32, weight32 = (t.detach().float().requires_grad_() for t in (x, weight))
    out = winograd._WinogradConv.apply(x32, weight32, None)
    grads = torch.autograd.grad(out, (x32, weight32), grad.float())
    for value, reference in zip((out, *grads), (exact, *exact_grads)):
        assert (value.double() - reference).abs().max() / reference.abs().max() < 5e-5


def test_only_one_gradient_when_only_one_is_needed():
    """The discriminator's pass for G's loss has frozen weights; its first pass has a detached input."""
    torch.manual_seed(0)
    layer = PatchConv(4, 3).double()
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    winograd._WinogradConv.apply(x, layer.weight, layer.bias).sum().backward()  # x needs no gradient
    expected = torch.autograd.grad(F.conv2d(x, layer.weight, layer.bias, padding=1).sum(), layer.weight)[0]
    torch.testing.assert_close(layer.weight.grad, expected)
    layer.requires_grad_(False)
    x.requires_grad_()
    winograd._WinogradConv.apply(x, layer.weight, layer.bias).sum().backward()
    torch.testing.assert_close(x.grad, torch.autograd.grad(F.conv2d(x, layer.weight, layer.bias, padding=1).sum(), x)[0])


def test_float32_layers_take_winograd_only_when_large(monkeypatch):
    calls, winograd_form = [], winograd._WinogradConv.apply
    monkeypatch.setattr(winograd._WinogradConv, "apply", lambda x, *args: calls.append(tuple(x.shape)) or winograd_form(x, *args))
    layer = PatchConv(4, 8)
    layer(torch.randn(1, 4, 21, 21))  # 400 output positions
    layer(torch.randn(1, 4, 16, 16))  # 225: torch's own op
    PatchConv(4, 8).double()(torch.randn(1, 4, 21, 21).double())  # float64: torch's own op
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(torch.randn(1, 4, 21, 21))  # autocast: torch's own op
    assert calls == [(1, 4, 21, 21)]
