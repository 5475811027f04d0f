"""What a network translates (direction, Lab or RGB, inpainting), seen by every layer: data, networks, training, inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pix2pix.errors import UserError

HINT_CHANNELS = 3  # a hint model's extra inputs: the ab of hinted pixels (ab/110, 0 elsewhere) and their mask (1 where hinted)

DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class Task:
    """What the network translates: the pair direction, whether it works in Lab, whether it inpaints
    (the input's pure-white pixels are the hole; everything else is given and kept), and whether it
    takes colour hints (L plus the hint channels of ``pix2pix.data.hints`` in, ab out)."""

    direction: str = "AtoB"
    lab_colorization: bool = False
    inpaint: bool = False
    hints: bool = False

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise UserError(f"direction {self.direction!r}: expected AtoB or BtoA")
        if self.inpaint and self.lab_colorization:
            raise UserError("inpaint and lab_colorization exclude each other: the hole is found in the RGB input")
        if self.hints and not (self.lab_colorization and self.direction == "AtoB"):
            raise UserError("hints: colour hints need lab_colorization with direction AtoB (L in, ab out)")

    @classmethod
    def of(cls, config: dict) -> Task:
        """The task of a checkpoint's saved options (or architecture); those saved before inpainting or hints existed use neither."""
        return cls(config["direction"], config["lab_colorization"], inpaint=config.get("inpaint", False), hints=config.get("hints", False))

    @property
    def channels(self) -> tuple[int, int]:
        """(input, output) channels of the generator."""
        if not self.lab_colorization:
            return 3, 3
        if self.hints:
            return 1 + HINT_CHANNELS, 2
        return (1, 2) if self.direction == "AtoB" else (2, 1)

    def split(self, path: Path, image: Image.Image) -> tuple[Image.Image, Image.Image]:
        """The (input, target) RGB images of one file: A|B halves, or the photo twice in Lab mode."""
        if self.lab_colorization:
            return image, image
        width, height = image.size
        half = width // 2
        if half < 1:
            raise UserError(f"{path}: {width}x{height} is too narrow to hold an A|B pair")
        a, b = image.crop((0, 0, half, height)), image.crop((half, 0, 2 * half, height))
        return (a, b) if self.direction == "AtoB" else (b, a)

    def to_tensors(self, source: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, W, 3)`` uint8 RGB input and target -> network tensors in [-1, 1]; a hint model's input has
        empty hint channels (no hints: it colorizes alone)."""
        if self.lab_colorization:
            from pix2pix.color import rgb_to_lab_normalized  # here: only Lab experiments run (and depend on) color.py

            lab = torch.from_numpy(rgb_to_lab_normalized(source))
            lightness, ab = lab[:1], lab[1:]
            if self.hints:
                lightness = torch.cat([lightness, lightness.new_zeros((HINT_CHANNELS, *lightness.shape[1:]))])
            return (lightness, ab) if self.direction == "AtoB" else (ab, lightness)
        return to_unit_range(source), to_unit_range(target)

    def to_rgb(self, network_input: torch.Tensor, network_output: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Single-image tensors -> (input, output) as ``(H, W, 3)`` uint8 RGB for people to look at."""
        x = network_input.detach().float().cpu().numpy()
        y = network_output.detach().float().cpu().numpy()
        if not self.lab_colorization:
            return to_uint8(x), to_uint8(y)
        from pix2pix.color import gray_rgb, lab_normalized_to_rgb

        if self.direction == "AtoB":
            return gray_rgb(x[0]), lab_normalized_to_rgb(x[0], y)
        return lab_normalized_to_rgb(np.zeros_like(x[0]), x), lab_normalized_to_rgb(y[0], x)

    def hole_mask(self, network_input: torch.Tensor) -> torch.Tensor:
        """``(..., 3, H, W)`` input in [-1, 1] -> ``(..., 1, H, W)`` bool: where all three channels are exactly
        white (255 maps to exactly 1.0), which ``pix2pix blank`` paints over the part to fill in."""
        return (network_input == 1.0).all(dim=-3, keepdim=True)

    def composite(self, network_input: torch.Tensor, network_output: torch.Tensor) -> torch.Tensor:
        """What the model answers: for inpainting the input's given pixels, bit for bit, and the
        network's output in the hole only; otherwise the network's output. (In the wider of the two
        dtypes: a half-precision output does not round the given pixels.)"""
        if not self.inpaint:
            return network_output
        return torch.where(self.hole_mask(network_input), network_output, network_input)


def to_unit_range(rgb: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def to_uint8(chw: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` float in [-1, 1] -> ``(H, W, 3)`` uint8 (one channel becomes gray)."""
    hwc = np.clip((chw.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc
