"""The PatchGAN's 4x4 stride-1 convolution by Winograd's minimal filtering, F(4x4, 4x4).

At 256 px the discriminator's 256 -> 512 stride-1 layer is 63 % of its FLOPs (2.0 GMAC a pass,
three passes a training step), and oneDNN already runs it near this CPU's peak. Winograd's
algorithm computes each 4x4 block of outputs from a 7x7 input tile with 49 products instead of 256:
the tiles and the weight go through fixed linear maps, 49 matrix products combine them, and a last
map brings the 4x4 outputs back. The maps are small dense matrices applied as one GEMM each.
Same function and weights; the float sums differ (relative error about 1e-5 against 4e-7 for
oneDNN, both against float64). Measured on a 2-core Zen 3: the layer's forward + backward at
256 px 59 -> 36 ms, the 256 px training step about 12 % faster (benchmarks/README.md).

``pix2pix.nn.cpu_kernels`` swaps these layers into built networks.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.nn.gemm_conv import measured_case, stride1_positions

KERNEL, OUTPUT_TILE = 4, 4  # 3x3 blocks (6x6 tiles) were 12 % slower at 31 x 31 out, 7 % faster at 2 x 15 x 15
TILE = OUTPUT_TILE + KERNEL - 1
POINTS = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0)  # and infinity: small points keep the rounding low
OUT_BLOCK = 64  # output channels a block: at 256 px 32 was 5 ms slower a pass, 128 1 ms slower
MIN_POSITIONS = 400  # output pixels x batch from which it was faster: 2 x 15 x 15 1.13x, 31 x 31 1.64x; 15 x 15 0.82x


@functools.cache
def transforms(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2-D maps (output, weight, input) of Toom-Cook F(OUTPUT_TILE, KERNEL).

    A correlation of a ``TILE`` input with a ``KERNEL`` filter is A^T [(G g) * (B^T d)], with G and A
    evaluating polynomials at ``POINTS`` and infinity and B^T the transpose of the interpolation.
    The 2-D maps are their Kronecker squares.
    """

    def vandermonde(columns: int) -> torch.Tensor:
        finite = torch.tensor(POINTS, dtype=torch.float64).unsqueeze(1) ** torch.arange(columns)
        infinity = torch.zeros(1, columns, dtype=torch.float64)
        infinity[0, -1] = 1.0
        return torch.cat([finite, infinity])

    output_map = vandermonde(OUTPUT_TILE).t()
    weight_map = vandermonde(KERNEL)
    input_map = torch.linalg.inv(vandermonde(TILE)).t()
    return tuple(torch.kron(M, M).to(device, dtype) for M in (output_map, weight_map, input_map))


def _tile_counts(height: int, width: int) -> tuple[int, int]:
    """Output tiles down and across for a padding-1 4x4 convolution of a height x width input."""
    return -(-(height - 1) // OUTPUT_TILE), -(-(width - 1) // OUTPUT_TILE)


def _weight_products(weight: torch.Tensor, weight_map: torch.Tensor) -> torch.Tensor:
    """(out, in, 4, 4) -> (TILE², out, in): the filter at each of the 49 evaluation points."""
    out_channels, in_channels = weight.shape[:2]
    return (weight_map @ weight.view(-1, KERNEL * KERNEL).t()).view(TILE * TILE, out_channels, in_channels)


def _input_products(x: torch.Tensor, input_map: torch.Tensor) -> torch.Tensor:
    """(batch, in, H, W) -> (TILE², batch x tiles, in): each 7x7 tile of the padded input, transformed."""
    batch, channels, height, width = x.shape
    rows, cols = _tile_counts(height, width)
    padded = F.pad(x, (1, cols * OUTPUT_TILE + 2 - width, 1, rows * OUTPUT_TILE + 2 - height))
    tiles = padded.permute(0, 2, 3, 1).unfold(1, TILE, OUTPUT_TILE).unfold(2, TILE, OUTPUT_TILE)
    tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(TILE * TILE, -1)
    return (input_map @ tiles).view(TILE * TILE, -1, channels)


class _WinogradConv(torch.autograd.Function):
    """Blocks of ``OUT_BLOCK`` output channels at a time: each block's 49 transformed filters (3.2 MB
    at 256 -> 512) are made, used while still in cache and dropped, instead of 26 MB at once."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        output_map, weight_map, input_map = transforms(x.device, x.dtype)
        batch, channels, height, width = x.shape
        rows, cols = _tile_counts(height, width)
        inputs = _input_products(x, input_map)
        full = x.new_empty(batch, weight.shape[0], rows * OUTPUT_TILE, cols * OUTPUT_TILE)
        for first in range(0, weight.shape[0], OUT_BLOCK):
            block = weight[first : first + OUT_BLOCK]
            products = torch.bmm(inputs, _weight_products(block, weight_map).transpose(1, 2))
            outputs = (output_map @ products.view(TILE * TILE, -1)).view(OUTPUT_TILE, OUTPUT_TILE, batch, rows, cols, -1)
            full[:, first : first + OUT_BLOCK].view(batch, -1, rows, OUTPUT_TILE, cols, OUTPUT_TILE).copy_(outputs.permute(2, 5, 3, 0, 4, 1))
        out = full[:, :, : height - 1, : width - 1].contiguous()
        if bias is not None:
            out += bias.view(1, -1, 1, 1)
        ctx.save_for_backward(x, weight)  # not ``inputs``: 3x bigger, and glibc's heap kept the holes
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        output_map, weight_map, input_map = transforms(grad.device, grad.dtype)
        batch, channels, height, width = x.shape
        rows, cols = _tile_counts(height, width)
        padded = F.pad(grad, (0, cols * OUTPUT_TILE - grad.shape[3], 0, rows * OUTPUT_TILE - grad.shape[2]))
        want_x, want_weight, want_bias = ctx.needs_input_grad
        grad_inputs = grad_x = grad_weight = grad_bias = None
        if want_weight:
            grad_weight = torch.empty_like(weight)
            inputs = _input_products(x, input_map)
        for first in range(0, weight.shape[0], OUT_BLOCK):
            block = padded[:, first : first + OUT_BLOCK]
            blocks = block.reshape(batch, -1, rows, OUTPUT_TILE, cols, OUTPUT_TILE).permute(3, 5, 0, 2, 4, 1)
            grad_products = (output_map.t() @ blocks.reshape(OUTPUT_TILE * OUTPUT_TILE, -1)).view(TILE * TILE, batch * rows * cols, -1)
            if want_weight:
                grad_filter = torch.bmm(grad_products.transpose(1, 2), inputs).view(TILE * TILE, -1)
                torch.mm(grad_filter.t(), weight_map, out=grad_weight[first : first + OUT_BLOCK].view(-1, KERNEL * KERNEL))
            if want_x:
                filters = _weight_products(weight[first : first + OUT_BLOCK], weight_map)
                if grad_inputs is None:
                    grad_inputs = torch.bmm(grad_products, filters)
                else:
                    grad_inputs.baddbmm_(grad_products, filters)
        if want_x:
            grad_tiles = (input_map.t() @ grad_inputs.view(TILE * TILE, -1)).view(TILE, TILE, batch, rows * cols, channels)
            del grad_inputs  # at most two of these (3.2 MB each at 256 -> 512) alive at once
            columns = grad_tiles.permute(2, 4, 0, 1, 3).reshape(batch, channels * TILE * TILE, rows * cols)
            del grad_tiles
            size = (rows * OUTPUT_TILE + 3, cols * OUTPUT_TILE + 3)
            grad_x = F.fold(columns, size, TILE, stride=OUTPUT_TILE)[:, :, 1 : height + 1, 1 : width + 1].contiguous()
        if want_bias:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias


class PatchConv(nn.Conv2d):
    """``nn.Conv2d(in, out, 4, 1, 1)``: same parameters and state dict, Winograd's algorithm on CPU
    where the output is large enough to pay for the transforms."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, KERNEL, 1, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if measured_case(x, self.weight) and stride1_positions(x) >= MIN_POSITIONS:
            return _WinogradConv.apply(x, self.weight, self.bias)
        return super().forward(x)
