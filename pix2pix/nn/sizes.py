"""The shapes the networks can take, without torch: config validation checks them before any data is read."""

from __future__ import annotations

import math

from pix2pix.errors import UserError

# PatchGAN receptive field (pixels) -> number of stride-2 layers; 1 is the 1x1 "PixelGAN".
PATCH_LAYERS = {1: 0, 16: 1, 34: 2, 70: 3, 142: 4, 286: 5}


def unet_depth(crop_size: int, depth: int | None = None) -> int:
    """Down-sampling steps for a crop size: a 1x1 bottleneck, at most 8 steps like unet_256."""
    if crop_size < 2:
        raise UserError(f"crop size {crop_size} is too small: the U-Net needs at least 2 px")
    depth = depth or min(8, int(math.log2(crop_size)))
    if crop_size % 2**depth:
        raise UserError(
            f"crop size {crop_size} is not divisible by 2^{depth} = {2**depth} (U-Net depth {depth}); "
            f"use a multiple of {2**depth} or choose another depth"
        )
    return depth


def patch_min_size(patch: int) -> int:
    """Smallest input side a PatchGAN of this receptive field takes: one output patch after its
    stride-2 layers and the two 4x4 stride-1 convolutions at the end."""
    layers = PATCH_LAYERS[patch]
    return 1 if layers == 0 else 3 * 2**layers
