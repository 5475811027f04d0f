"""The pix2pix objective: a GAN loss on PatchGAN logits plus an L1 reconstruction term."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

GAN_MODES = ("vanilla", "lsgan")


class GANLoss(nn.Module):
    """``vanilla``: binary cross-entropy on logits (the paper); ``lsgan``: least squares.

    Every patch is labelled 1 (real) or 0 (fake), no label smoothing, as in the reference.
    """

    def __init__(self, mode: str = "vanilla"):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"gan mode {mode!r}: expected one of {GAN_MODES}")
        self.mode = mode

    def forward(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)
