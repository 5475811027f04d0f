"""Load a trained generator from a run folder or checkpoint file, without any training code."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.nn.networks import build_generator


def generator_from_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The trained generator and the saved config of a run folder or checkpoint file."""
    file = ckpt.resolve(path)
    payload = ckpt.load(file, map_location=device, fields=ckpt.MODEL_FIELDS)
    with ckpt.restoring(file, "generator"):
        with torch.device("meta"):  # no random initialisation of weights about to be replaced (0.2 s at 256 px)
            generator = build_generator(payload["architecture"])
        generator.load_state_dict(payload["generator"], assign=True)
    return generator.to(device, torch.float32), payload["config"]  # assign keeps a stored dtype: compute in fp32
