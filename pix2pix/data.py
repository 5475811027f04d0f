"""Training and evaluation data: A|B side-by-side pairs, or plain colour images for Lab colorization.

Images are decoded and resized once into a uint8 cache, so JPEG/PNG decoding stays out of the
training loop; each step only slices the random crop, flips and scales to [-1, 1]. The crops
and flips of an epoch are drawn from a generator seeded by (seed, epoch), so any step of any
epoch can be rebuilt exactly when training resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .color import gray_rgb, lab_normalized_to_rgb, rgb_to_lab_normalized
from .errors import UserError
from .images import open_rgb

DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class Task:
    """What the network translates: the pair direction, and whether it works in Lab."""

    direction: str = "AtoB"
    lab_colorization: bool = False

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise UserError(f"direction {self.direction!r}: expected AtoB or BtoA")

    @property
    def channels(self) -> tuple[int, int]:
        """(input, output) channels of the generator."""
        if not self.lab_colorization:
            return 3, 3
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
        """``(H, W, 3)`` uint8 RGB input and target -> network tensors in [-1, 1]."""
        if self.lab_colorization:
            lab = torch.from_numpy(rgb_to_lab_normalized(source))
            lightness, ab = lab[:1], lab[1:]
            return (lightness, ab) if self.direction == "AtoB" else (ab, lightness)
        return to_unit_range(source), to_unit_range(target)

    def to_rgb(self, network_input: torch.Tensor, network_output: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Single-image tensors -> (input, output) as ``(H, W, 3)`` uint8 RGB for people to look at."""
        x = network_input.detach().float().cpu().numpy()
        y = network_output.detach().float().cpu().numpy()
        if not self.lab_colorization:
            return to_uint8(x), to_uint8(y)
        if self.direction == "AtoB":
            return gray_rgb(x[0]), lab_normalized_to_rgb(x[0], y)
        return lab_normalized_to_rgb(np.zeros_like(x[0]), x), lab_normalized_to_rgb(y[0], x)


def to_unit_range(rgb: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def to_uint8(chw: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` float in [-1, 1] -> ``(H, W, 3)`` uint8 (one channel becomes gray)."""
    hwc = np.clip((chw.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def resize(image: Image.Image, size: int) -> Image.Image:
    return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.BICUBIC)


class TrainingSet:
    """All training pairs, resized to ``load_size`` squared, as uint8 tensors in memory.

    Random jitter (the reference default): the same random ``crop_size`` crop and the same
    horizontal flip for input and target.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        task: Task,
        load_size: int,
        crop_size: int,
        flip: bool = True,
        progress: Callable[[int], None] | None = None,
    ):
        if not paths:
            raise UserError("no training images")
        if crop_size > load_size:
            raise UserError(f"crop size {crop_size} is larger than load size {load_size}")
        self.task, self.load_size, self.crop_size, self.flip = task, load_size, crop_size, flip
        self.names = [Path(p).stem for p in paths]
        self.sources = torch.empty((len(paths), load_size, load_size, 3), dtype=torch.uint8)
        self.targets = None if task.lab_colorization else torch.empty_like(self.sources)
        for index, path in enumerate(paths):
            source, target = task.split(Path(path), open_rgb(path))
            self.sources[index] = torch.from_numpy(np.array(resize(source, load_size)))
            if self.targets is not None:
                self.targets[index] = torch.from_numpy(np.array(resize(target, load_size)))
            if progress:
                progress(1)

    def __len__(self) -> int:
        return len(self.names)

    def epoch_plan(self, seed: int, epoch: int) -> EpochPlan:
        """Order, crop offsets and flips of one epoch, a pure function of (seed, epoch)."""
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        n = len(self)
        order = torch.randperm(n, generator=generator)
        offsets = torch.randint(0, self.load_size - self.crop_size + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        if not self.flip:
            flips.zero_()
        return EpochPlan(order, offsets, flips)

    def batch(self, plan: EpochPlan, index: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of an epoch: (inputs, targets), each ``(B, C, crop, crop)`` in [-1, 1]."""
        inputs, targets = [], []
        for position in range(index * batch_size, min((index + 1) * batch_size, len(plan.order))):
            item = int(plan.order[position])
            y, x = (int(v) for v in plan.offsets[position])
            window = (slice(y, y + self.crop_size), slice(x, x + self.crop_size))
            source = self.sources[item][window]
            target = source if self.targets is None else self.targets[item][window]
            if plan.flips[position]:
                source, target = source.flip(1), target.flip(1)
            network_input, network_target = self.task.to_tensors(source.numpy(), target.numpy())
            inputs.append(network_input)
            targets.append(network_target)
        return torch.stack(inputs), torch.stack(targets)


    def fixed_batch(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` items, centre-cropped and unflipped: the same samples every time."""
        count = min(count, len(self))
        centre = (self.load_size - self.crop_size) // 2
        plan = EpochPlan(torch.arange(count), torch.full((count, 2), centre), torch.zeros(count, dtype=torch.bool))
        return self.batch(plan, 0, count)


@dataclass
class EpochPlan:
    order: torch.Tensor
    offsets: torch.Tensor
    flips: torch.Tensor

    def shard(self, rank: int, world_size: int) -> EpochPlan:
        """One process's share, as torch's DistributedSampler deals it: every ``world_size``-th position
        from ``rank``, wrapping round to the start so that every process runs the same number of steps."""
        per_rank = -(-len(self.order) // world_size)
        positions = torch.arange(rank, per_rank * world_size, world_size) % len(self.order)
        return EpochPlan(self.order[positions], self.offsets[positions], self.flips[positions])


def load_eval_pair(path: Path, task: Task, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One evaluation file, no jitter: (input tensor, target tensor, target as uint8 RGB).

    ``size`` resizes to a square like the reference test; ``None`` keeps the native size.
    """
    source, target = task.split(Path(path), open_rgb(path))
    if size:
        source, target = resize(source, size), resize(target, size)
    target_rgb = np.asarray(target)
    network_input, network_target = task.to_tensors(np.asarray(source), target_rgb)
    return network_input, network_target, target_rgb
