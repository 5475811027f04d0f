"""The conditional GAN's networks, drawing digits from its generator, and loading a trained one.

G(z|y) joins noise z to a learned embedding of the label y and up-samples to a 32x32 digit;
D(x|y) sees the image joined to ten one-hot label planes. Sampling and loading need no training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pix2pix import checkpoint as ckpt
from pix2pix.data.digits import N_CLASSES
from pix2pix.errors import UserError

MODEL_KIND = "cgan-digits"  # marks cgan checkpoints apart from pix2pix ones


class DigitGenerator(nn.Module):
    """G(z|y): [z, embedding(y)] as a 1x1 map, four transposed convolutions up to 32x32, tanh."""

    def __init__(self, nz: int = 64, ngf: int = 32):
        super().__init__()
        self.nz = nz
        self.embed = nn.Embedding(N_CLASSES, nz)
        widths = (nz * 2, ngf * 4, ngf * 2, ngf)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            stride, padding = (1, 0) if index == 0 else (2, 1)  # 1 -> 4 -> 8 -> 16 px
            layers += [nn.ConvTranspose2d(width_in, width_out, 4, stride, padding, bias=False), nn.BatchNorm2d(width_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(ngf, 1, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], dim=1)[:, :, None, None])


class DigitDiscriminator(nn.Module):
    """D(x|y): the image with ten one-hot label planes, strided convolutions down to one logit."""

    def __init__(self, ndf: int = 32):
        super().__init__()
        widths = (1 + N_CLASSES, ndf, ndf * 2, ndf * 4)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):  # 32 -> 16 -> 8 -> 4 px
            layers.append(nn.Conv2d(width_in, width_out, 4, 2, 1, bias=index == 0))
            if index:
                layers.append(nn.BatchNorm2d(width_out))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(ndf * 4, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        planes = F.one_hot(labels, N_CLASSES).to(images.dtype)[:, :, None, None].expand(-1, -1, *images.shape[2:])
        return self.net(torch.cat([images, planes], dim=1)).flatten()


def generate(generator: DigitGenerator, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Digits for ``labels`` as uint8 ``(N, 32, 32)``: eval mode and a private noise generator,
    so sampling never touches the training RNG or batch-norm statistics."""
    device = next(generator.parameters()).device
    z = torch.randn(len(labels), generator.nz, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = generator(z, labels.to(device)).cpu()
    generator.train(was_training)
    return ((images.squeeze(1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def draw(generator: DigitGenerator, digits: Sequence[int], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` samples of each digit: uint8 images ``(len(digits) * count, 32, 32)`` and a grid
    with one row per digit (row k shows ``digits[k]``) and 2 px gray gaps."""
    images = generate(generator, torch.tensor(list(digits)).repeat_interleave(count), seed).numpy()
    return images, tile(images, len(digits), count)


def tile(images: np.ndarray, rows: int, columns: int, gap: int = 2) -> np.ndarray:
    size = images.shape[-1]
    step = size + gap
    grid = np.full((rows * step + gap, columns * step + gap), 128, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[gap + row * step : gap + row * step + size, gap + column * step : gap + column * step + size] = image
    return grid


def generator_from_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[DigitGenerator, dict]:
    """The digit generator of a cgan run folder, generator.pt or checkpoint.pt, and its config."""
    payload = ckpt.load(ckpt.resolve(path), map_location=device)
    architecture = payload.get("architecture", {})
    if architecture.get("model") != MODEL_KIND:
        raise UserError(f"{path}: not a `pix2pix cgan` checkpoint (a pix2pix model? use `pix2pix evaluate`)")
    generator = DigitGenerator(architecture["nz"], architecture["ngf"])
    generator.load_state_dict(payload["generator"])
    return generator.to(device).eval(), payload["config"]
