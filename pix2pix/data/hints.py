"""Colour hints for user-guided colorization (Zhang et al. 2017, "Real-Time User-Guided Image Colorization
with Learned Deep Priors").

A hint model's generator sees L and ``HINT_CHANNELS`` more: the ab of hinted pixels (normalised as
``pix2pix.color`` does, 0 elsewhere) and a mask, 1 on hinted pixels. A hint is a square of pixels
showing one colour. Training simulates them from the target as the paper does: after each hint
another follows with probability 7/8 (so 1 sample in 8 has none, and the one model also colorizes
alone; 7 on average), each a square of 1 to 9 px showing the mean ab of the target there. Places
are uniform over the image, the paper's alternative to a gaussian around the centre: training
crops are random anyway, and people hint anywhere. All draws come from the caller's generator,
so a sample's hints are a function of its seed; with a fixed count, the first k hints are the
same whatever the count, so more hints add to fewer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pix2pix.errors import UserError
from pix2pix.task import HINT_CHANNELS

STOP_PROBABILITY = 1 / 8  # the paper's geometric p
MAX_SIZE = 9  # squares of 1..9 px
CURVE_COUNTS = (0, 1, 2, 5, 10, 20, 50)  # the hints evaluate simulates per image for its curve
HINT_KEYS = {"x", "y", "color", "size"}
COLOR_PATTERN = re.compile(r"#[0-9a-fA-F]{6}")


class Hint(NamedTuple):
    """A colour given at a pixel of an image: the ``size`` x ``size`` square centred on (x, y), in that image's pixels."""

    x: int
    y: int
    rgb: tuple[int, int, int]
    size: int = 1


def random_count(generator: torch.Generator) -> int:
    """The paper's number of hints: after each, another with probability 1 - STOP_PROBABILITY."""
    count = 0
    while torch.rand((), generator=generator).item() >= STOP_PROBABILITY:
        count += 1
    return count


def simulate_hints(ab: torch.Tensor, generator: torch.Generator, count: int | None = None) -> torch.Tensor:
    """``(HINT_CHANNELS, H, W)`` hints revealed from a target's ``(2, H, W)`` normalised ab: ``count`` of them,
    or the paper's random number."""
    _, height, width = ab.shape
    channels = ab.new_zeros((HINT_CHANNELS, height, width))
    for _ in range(random_count(generator) if count is None else count):
        size = int(torch.randint(1, min(MAX_SIZE, height, width) + 1, (), generator=generator))
        top = int(torch.randint(0, height - size + 1, (), generator=generator))
        left = int(torch.randint(0, width - size + 1, (), generator=generator))
        square = (slice(top, top + size), slice(left, left + size))
        channels[(slice(0, 2), *square)] = ab[(slice(None), *square)].mean(dim=(1, 2))[:, None, None]
        channels[(2, *square)] = 1.0
    return channels


def hint_channels(hints: Sequence[Hint], image_size: tuple[int, int], frame: tuple[int, int]) -> torch.Tensor:
    """``(HINT_CHANNELS, h, w)`` for ``hints`` given in the pixels of an ``image_size`` (H, W) image, in the network's
    ``frame`` (h, w): each square lands where it was put, scaled with the image (at least 1 px)."""
    from pix2pix.color import rgb_to_lab_normalized

    (height, width), (frame_height, frame_width) = image_size, frame
    channels = torch.zeros(HINT_CHANNELS, frame_height, frame_width)
    if not hints:
        return channels
    scale = min(frame_height / height, frame_width / width)
    colours = rgb_to_lab_normalized(np.array([[hint.rgb for hint in hints]], np.uint8))[1:, 0]  # (2, hints)
    for hint, ab in zip(hints, torch.from_numpy(colours).T):
        size = max(1, round(hint.size * scale))
        top = int((hint.y + 0.5) * frame_height / height) - size // 2
        left = int((hint.x + 0.5) * frame_width / width) - size // 2
        square = (slice(max(top, 0), top + size), slice(max(left, 0), left + size))
        channels[(slice(0, 2), *square)] = ab[:, None, None]
        channels[(2, *square)] = 1.0
    return channels


def check_hints_fit(hints: Sequence[Hint], image_size: tuple[int, int], source: str) -> None:
    """Refuse a hint outside its ``image_size`` (H, W) image; ``source`` names where the hints came from."""
    height, width = image_size
    for number, hint in enumerate(hints, 1):
        if not (hint.x < width and hint.y < height):
            raise UserError(f"{source}: hint {number} at x {hint.x}, y {hint.y} is outside the {width}x{height} image")


def parse_hints(value: object, source: str, max_count: int | None = None, max_size: int | None = None) -> list[Hint]:
    """A JSON list of ``{"x": int, "y": int, "color": "#rrggbb"}`` (optionally ``"size": px``) -> hints;
    anything else is a one-line ``UserError`` starting with ``source``. The demo server bounds the
    count and the size (its clients are untrusted); files and the command line need no bound."""
    if not isinstance(value, list):
        raise UserError(f"{source}: expected a list of hints {{\"x\": int, \"y\": int, \"color\": \"#rrggbb\"}}, got {type(value).__name__}")
    if max_count is not None and len(value) > max_count:
        raise UserError(f"{source}: {len(value)} hints, at most {max_count} are allowed")
    hints = []
    for number, item in enumerate(value, 1):
        where = f"{source}: hint {number}"
        if not isinstance(item, dict):
            raise UserError(f"{where}: expected an object {{\"x\": int, \"y\": int, \"color\": \"#rrggbb\"}}, got {type(item).__name__}")
        if unknown := sorted(set(item) - HINT_KEYS):
            raise UserError(f"{where}: unknown key {unknown[0]!r} (expected x, y, color and optionally size)")
        for key, (least, most) in {"x": (0, None), "y": (0, None), **({"size": (1, max_size)} if "size" in item else {})}.items():
            whole = item.get(key)
            if not isinstance(whole, int) or isinstance(whole, bool) or whole < least or (most is not None and whole > most):
                expected = f">= {least}" if most is None else f"from {least} to {most}"
                raise UserError(f"{where}: {key!r} must be a whole number {expected}, got {json.dumps(whole)}")
        colour = item.get("color")
        if not isinstance(colour, str) or not COLOR_PATTERN.fullmatch(colour):
            raise UserError(f"{where}: 'color' must be \"#rrggbb\", got {json.dumps(colour)}")
        rgb = tuple(int(colour[start : start + 2], 16) for start in (1, 3, 5))
        hints.append(Hint(item["x"], item["y"], rgb, item.get("size", 1)))
    return hints


@dataclass(frozen=True)
class HintsFile:
    """The hints of each input image (those it does not name get none), and the file they came from (named in errors)."""

    path: Path
    by_image: dict[Path, list[Hint]]

    def of(self, image: Path, image_size: tuple[int, int]) -> list[Hint]:
        """The hints of ``image``, checked against its ``image_size`` (H, W)."""
        hints = self.by_image.get(image, [])
        check_hints_fit(hints, image_size, f"{self.path}: {image.name}")
        return hints


def read_hints_file(path: Path, images: Sequence[Path], folder: bool) -> HintsFile:
    """Hints from a JSON file: a list of hints for one image, or for a ``folder`` an object mapping its file
    names to such lists."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such hints file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable JSON hints file ({exc})") from None
    if not folder:
        return HintsFile(path, {images[0]: parse_hints(value, str(path))})
    if not isinstance(value, dict):
        raise UserError(f"{path}: for a folder of images, expected an object mapping file names to lists of hints, got {type(value).__name__}")
    by_name = {image.name: image for image in images}
    if unknown := sorted(set(value) - set(by_name)):
        raise UserError(f"{path}: {unknown[0]!r} is not one of the input images")
    return HintsFile(path, {by_name[name]: parse_hints(hints, f"{path}: {name}") for name, hints in value.items()})
