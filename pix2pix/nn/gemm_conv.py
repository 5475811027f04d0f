"""Convolutions as plain matrix products where oneDNN, torch's CPU convolution, is slow on their shapes.

At the bottom of the U-Net (512 channels on 1x1 to 4x4 pixels at batch 1) a convolution is a
few matrix-vector products over a 16-32 MB weight, and oneDNN is slow on such shapes: 2.8 ms for
the forward pass of a 512 -> 512 layer on 2x2 pixels, against 0.5 ms as a matrix product. MKL's
GEMM is itself about 2x slow when one side has only a few rows, so those products run as a batch
of column blocks. Where the low-resolution side (a down layer's output, an up layer's input) has
at most ``MAX_DOWN_POSITIONS`` / ``MAX_UP_POSITIONS`` pixels x batch, on CPU, the convolution is
written out: ``unfold`` gathers each position's 4x4 window, one product with the weight computes
them all, and ``fold`` scatters a transposed convolution's windows back.

The PatchGAN's score layer (512 channels -> 1, 4x4, stride 1) is the other slow shape: oneDNN
runs it at about 10 GFLOP/s. ``ScoreConv`` makes one product of the 16 taps' weights with the
input, which gives every tap's map, and a fixed 16 -> 1 convolution adds each map at its offset.

Same functions, same weights and gradients; only the order of the float sums differs (about
1e-6). Measured on a 2-core Zen 3, paired in one process: the 64 px training step 136 -> 108 ms,
the 256 px one 1.06-1.08x faster, the 256 px generator at batch 1 1.15x; up to 64 positions for
the up layers and ``ScoreConv`` another 3.5 % at 256 px (benchmarks/README.md).

``pix2pix.nn.cpu_kernels`` swaps these layers into built networks.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

KERNEL, STRIDE, PADDING = 4, 2, 1
# low-resolution pixels x batch up to which the matrix form was faster, forward and backward
MAX_DOWN_POSITIONS = 32  # at 64, 512 -> 512 on 16x16: 17.4 ms oneDNN, 20.8 ms matrix form
MAX_UP_POSITIONS = 64  # at 64, 1024 -> 512 on 8x8: 31.4 -> 26.5 ms; on 16 x 2x2: 55.6 -> 24.8 ms
MIN_SCORE_POSITIONS = 100  # ScoreConv output pixels x batch: 36-72 a tie, 100 1.2x, 900 3.7x, 7,200 2.2x
CHUNKS = 8  # a skinny GEMM as a batch of 8 column blocks: MKL runs that 1.5-2x faster than one call


def skinny_matmul(rows: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``rows @ matrix`` for a few rows, with ``matrix``'s columns split into ``CHUNKS`` blocks."""
    count, width = rows.shape[0], matrix.shape[1]
    if width % CHUNKS:
        return rows @ matrix
    blocks = matrix.unflatten(1, (CHUNKS, width // CHUNKS)).transpose(0, 1)
    products = torch.bmm(rows.expand(CHUNKS, *rows.shape), blocks)
    return products.transpose(0, 1).reshape(count, width)


def _windows(x: torch.Tensor) -> torch.Tensor:
    """Each 4x4 stride-2 window of ``x`` as a row: (batch x positions, channels x 16)."""
    cols = F.unfold(x, KERNEL, padding=PADDING, stride=STRIDE)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _scatter(rows: torch.Tensor, batch: int, size: tuple[int, int]) -> torch.Tensor:
    """The inverse of ``_windows``: sum each row's 4x4 window into an image of ``size``."""
    cols = rows.view(batch, -1, rows.shape[1]).transpose(1, 2)
    return F.fold(cols, size, KERNEL, padding=PADDING, stride=STRIDE)


def _channels_last_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N x H x W, C)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _image(rows: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """(N x H x W, C) -> a fresh contiguous (N, C, H, W) (never a view: in-place layers follow)."""
    return rows.view(batch, height, width, -1).permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


class _DownMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        batch, _, height, width = x.shape
        windows = _windows(x)
        flat_weight = weight.view(weight.shape[0], -1)
        out = skinny_matmul(windows, flat_weight.t())
        if bias is not None:
            out += bias
        ctx.save_for_backward(windows, weight)
        ctx.input_size = (height, width)
        return _image(out, batch, height // STRIDE, width // STRIDE)

    @staticmethod
    def backward(ctx, grad):
        windows, weight = ctx.saved_tensors
        grad_rows = _channels_last_rows(grad)
        flat_weight = weight.view(weight.shape[0], -1)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _scatter(skinny_matmul(grad_rows, flat_weight), grad.shape[0], ctx.input_size)
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_rows.t() @ windows).view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias


class _UpMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        batch, channels, height, width = x.shape
        rows = _channels_last_rows(x)
        out = _scatter(skinny_matmul(rows, weight.view(channels, -1)), batch, (STRIDE * height, STRIDE * width))
        if bias is not None:
            out += bias.view(1, -1, 1, 1)
        ctx.save_for_backward(rows, weight)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        rows, weight = ctx.saved_tensors
        batch, channels, height, width = ctx.input_shape
        grad_windows = _windows(grad)
        flat_weight = weight.view(channels, -1)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _image(skinny_matmul(grad_windows, flat_weight.t()), batch, height, width)
        if ctx.needs_input_grad[1]:
            grad_weight = (rows.t() @ grad_windows).view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias


def measured_case(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Where the rewritten convolutions (here and in ``winograd``) were measured: CPU, float32, no
    autocast, weights in their default layout (not channels_last). Traced, scripted and compiled
    graphs keep the convolution op."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.is_contiguous()
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
    )


def stride1_positions(x: torch.Tensor) -> int:
    """Output pixels x batch of a 4x4, stride-1, padding-1 convolution of ``x`` (the PatchGAN's last two layers)."""
    return x.shape[0] * (x.shape[2] - 1) * (x.shape[3] - 1)


class DownConv(nn.Conv2d):
    """``nn.Conv2d(in, out, 4, 2, 1)``: same parameters and state dict, faster on tiny inputs."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, PADDING, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if measured_case(x, self.weight) and x.shape[0] * (x.shape[2] // STRIDE) * (x.shape[3] // STRIDE) <= MAX_DOWN_POSITIONS:
            return _DownMatmul.apply(x, self.weight, self.bias)
        return super().forward(x)


class UpConv(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d(in, out, 4, 2, 1)``: same parameters and state dict, faster on tiny inputs."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, PADDING, bias=bias)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is None and measured_case(x, self.weight) and x.shape[0] * x.shape[2] * x.shape[3] <= MAX_UP_POSITIONS:
            return _UpMatmul.apply(x, self.weight, self.bias)
        return super().forward(x, output_size)


@functools.cache
def _tap_picker(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A (1, 16, 4, 4) filter whose channel t is 1 at tap t alone: convolving with it sums each tap's map at its offset."""
    return torch.eye(KERNEL * KERNEL, device=device, dtype=dtype).view(1, KERNEL * KERNEL, KERNEL, KERNEL)


def score_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a (1, C, 4, 4) weight: one (16 x C) by (C x pixels) product, then the taps' sum."""
    batch, channels, height, width = x.shape
    taps = torch.matmul(weight.view(channels, KERNEL * KERNEL).t(), x.reshape(batch, channels, height * width))
    return F.conv2d(taps.view(batch, KERNEL * KERNEL, height, width), _tap_picker(x.device, x.dtype), bias, padding=PADDING)


class ScoreConv(nn.Conv2d):
    """``nn.Conv2d(in, 1, 4, 1, 1)``, the PatchGAN's score layer: same parameters and state dict, faster on large inputs.

    Autograd differentiates the product and the tap sum (a fixed 16 -> 1 convolution) itself.
    """

    def __init__(self, in_channels: int, bias: bool = True):
        super().__init__(in_channels, 1, KERNEL, 1, PADDING, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if measured_case(x, self.weight) and stride1_positions(x) >= MIN_SCORE_POSITIONS:
            return score_conv(x, self.weight, self.bias)
        return super().forward(x)
