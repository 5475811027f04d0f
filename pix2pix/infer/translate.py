"""Translate new images (no targets) with a trained generator: any size, any aspect ratio.

- Each image is reflect-padded to the U-Net's multiple and cropped back (``run_generator``).
- Images longer than ``max_side`` are cut into overlapping tiles whose predictions are blended
  with weights that ramp linearly across each overlap, so memory stays bounded and no seams show.
- A colorization model runs on a copy of the L channel shrunk to ``color_side`` (by default
  the trained crop size: the references only ever return 256 px images); the predicted ab is
  upsampled bicubically and recombined with the full-resolution L, so every output keeps the
  input's resolution and sharpness. (For the reverse ab -> L model the roles swap.) A hint
  model's hints, given in the input's own pixels, are drawn into that shrunk frame where they were put.
- An inpainting model's answer keeps every given pixel of the input and takes the network's
  output in the hole only (``Task.composite``), after the tiles are blended.
- Same-sized images are batched, ``batch_size`` at a time; tiles of large images too. In train
  mode (the paper's test time) every image or tile keeps its own batch-norm statistics
  (``PerImageBatchNorm``), so batching changes only the order of dropout draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pix2pix.data.hints import Hint, HintsFile, hint_channels
from pix2pix.data.images import read_rgb, save_image
from pix2pix.errors import UserError
from pix2pix.files import claim_output_folder
from pix2pix.infer.evaluate import run_generator, set_eval_mode
from pix2pix.nn.device import Acceleration
from pix2pix.task import Task

# Images held back while waiting for same-sized company, as a multiple of the batch size.
PENDING_BATCHES = 4


NO_HINTS = "takes no colour hints (it was trained without --hints)"  # what a model without hints says to hints given

def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles of ``min(tile, length)`` covering ``length``, consecutive ones sharing >= ``overlap``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return [*starts, length - tile]


def feather(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """Blending weights along one tile axis: 1 inside, a linear ramp over ``overlap`` px at shared edges.

    Edges on the image border keep full weight; the ramps never reach 0, so every pixel has weight.
    """
    weights = torch.ones(size)
    ramp = (torch.arange(min(overlap, size)) + 0.5) / overlap
    if ramp_start:
        weights[: len(ramp)] = torch.minimum(weights[: len(ramp)], ramp)
    if ramp_end:
        weights[size - len(ramp) :] = torch.minimum(weights[size - len(ramp) :], ramp.flip(0))
    return weights


def run_tiled(generator: nn.Module, inputs: torch.Tensor, tile: int, overlap: int, batch_size: int) -> torch.Tensor:
    """Run ``(N, C, H, W)`` through the generator in tiles of at most ``tile`` px, ``batch_size`` tiles at a time.

    A side no longer than ``tile`` is one tile, so small images run whole (bit-identical to
    ``run_generator``); larger ones are blended from overlapping tiles.
    """
    count, _, height, width = inputs.shape
    rows, columns = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    if len(rows) == len(columns) == 1:  # one tile per image: no blending needed
        return torch.cat([run_generator(generator, part) for part in inputs.split(batch_size)])
    tile_h, tile_w = min(tile, height), min(tile, width)
    weight_y = [feather(tile_h, overlap, i > 0, i < len(rows) - 1) for i in range(len(rows))]
    weight_x = [feather(tile_w, overlap, j > 0, j < len(columns) - 1) for j in range(len(columns))]
    weights = {(y, x): (weight_y[i][:, None] * weight_x[j][None, :]).to(inputs.device)
               for i, y in enumerate(rows) for j, x in enumerate(columns)}  # fmt: skip
    crops = [(n, y, x) for n in range(count) for y in rows for x in columns]
    total = None
    weight_sum = torch.zeros(height, width, device=inputs.device)
    for y, x in weights:
        weight_sum[y : y + tile_h, x : x + tile_w] += weights[y, x]
    for first in range(0, len(crops), batch_size):
        chunk = crops[first : first + batch_size]
        batch = torch.stack([inputs[n, :, y : y + tile_h, x : x + tile_w] for n, y, x in chunk])
        outputs = run_generator(generator, batch)
        if total is None:
            total = outputs.new_zeros(count, outputs.shape[1], height, width)
        for output, (n, y, x) in zip(outputs, chunk):
            total[n, :, y : y + tile_h, x : x + tile_w] += output * weights[y, x]
    return total / weight_sum


def fit_within(height: int, width: int, side: int) -> tuple[int, int]:
    """(H, W) scaled down, aspect kept, so the longer side is at most ``side`` (never scaled up)."""
    scale = side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class Translator:
    """A generator ready to translate RGB arrays of any size; see the module docstring."""

    generator: nn.Module
    task: Task
    max_side: int = 1024
    overlap: int = 64
    color_side: int = 256
    batch_size: int = 8
    config: dict = field(default_factory=dict)  # the training options, when loaded from a checkpoint
    acceleration: Acceleration | None = None  # default: plain fp32 on the generator's device

    def __post_init__(self):
        if self.max_side < 1 or self.color_side < 1 or self.batch_size < 1:
            raise UserError("max side, colour side and batch size must be positive")
        if not 0 <= self.overlap <= self.max_side // 2:
            raise UserError(f"tile overlap {self.overlap} must be between 0 and half the max side ({self.max_side // 2})")

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Path,
        device: torch.device | str = "cpu",
        eval_mode: str = "train",
        color_side: int | None = None,
        acceleration: Acceleration | None = None,
        **options,
    ) -> Translator:
        """Direction, colorization and the default colour side (the crop size) come from the checkpoint."""
        from pix2pix.infer.load import generator_from_checkpoint

        generator, config = generator_from_checkpoint(checkpoint, device)
        set_eval_mode(generator, eval_mode)
        generator = (acceleration or Acceleration(torch.device(device))).for_inference(generator)
        task = Task.of(config)
        return cls(generator, task, color_side=color_side or config["crop_size"], config=config, acceleration=acceleration, **options)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def network_input(self, rgb: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 -> the generator's input channels at full resolution."""
        return self.task.to_tensors(rgb, rgb)[0]

    def predict(self, inputs: torch.Tensor, hints: Sequence[Sequence[Hint]] | None = None) -> torch.Tensor:
        """``(N, C_in, H, W)`` -> ``(N, C_out, H, W)``; colorization runs small and is upsampled; inpainting
        keeps the input's given pixels (tiles blended first, so the blend cannot round them). A hint model's
        ``hints`` (per image, in its pixels) are drawn into the hint channels in the frame the network sees."""
        height, width = inputs.shape[-2:]
        if not self.task.lab_colorization:
            return self.task.composite(inputs, run_tiled(self.generator, inputs, self.max_side, self.overlap, self.batch_size))
        small_size = fit_within(height, width, self.color_side)
        small = inputs if small_size == (height, width) else F.interpolate(inputs, small_size, mode="bilinear", antialias=True, align_corners=False)
        if hints is not None:
            drawn = torch.stack([hint_channels(image_hints, (height, width), small_size) for image_hints in hints])
            small = torch.cat([small[:, :1], drawn.to(small)], dim=1)
        outputs = run_tiled(self.generator, small, self.max_side, self.overlap, self.batch_size)
        if small_size != (height, width):
            outputs = F.interpolate(outputs, (height, width), mode="bicubic", align_corners=False)
        return outputs.clamp(-1.0, 1.0)

    def translate(self, images: Sequence[np.ndarray], hints: Sequence[Sequence[Hint]] | None = None) -> list[np.ndarray]:
        """Same-shaped ``(H, W, 3)`` uint8 images -> their translations, same shape. A hint model takes each
        image's ``hints`` in its own pixels (see ``pix2pix.data.hints.check_hints_fit``); without, it colorizes alone."""
        if hints is not None and not self.task.hints:
            raise UserError(f"this model {NO_HINTS}")
        inputs = torch.stack([self.network_input(image) for image in images])
        accel = self.acceleration or Acceleration(self.device)
        with torch.inference_mode(), accel.autocast():
            outputs = self.predict(accel.to_device(inputs), hints).float()
        return [self.task.to_rgb(network_input, output)[1] for network_input, output in zip(inputs, outputs)]


def output_paths(paths: Sequence[Path], output_dir: Path) -> list[Path]:
    """``OUT/NAME.png`` per input; refuses two inputs with one output name, or overwriting an input."""
    destinations = [Path(output_dir) / f"{Path(path).stem}.png" for path in paths]
    seen: dict[Path, Path] = {}
    inputs = {Path(path).resolve() for path in paths}
    for path, destination in zip(paths, destinations):
        if destination in seen:
            raise UserError(f"{path} and {seen[destination]} would both be written to {destination}; rename one")
        if destination.resolve() in inputs:
            raise UserError(f"{destination}: would overwrite an input image; choose another output folder")
        seen[destination] = Path(path)
    return destinations


def translate_files(
    translator: Translator,
    paths: Sequence[Path],
    output_dir: Path,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    hints: HintsFile | None = None,
) -> list[Path]:
    """Write ``OUT/NAME.png`` for every input (each file atomically), with a hint model's ``hints``; returns the written paths.

    ``OUT`` must be missing, empty or written by pix2pix (``claim_output_folder``). Images wait (a few batches' worth at most) for others of the same size to fill a batch.
    A bad input stops the run with a ``UserError`` naming it; files already written stay valid.
    """
    destinations = output_paths(paths, output_dir)
    claim_output_folder(output_dir)
    torch.manual_seed(seed)  # test-time dropout (train mode) is then reproducible
    pending: dict[tuple[int, ...], list[tuple[Path, np.ndarray, list[Hint]]]] = {}

    def flush(shape: tuple[int, ...]) -> None:
        batch = pending.pop(shape)
        images = [image for _, image, _ in batch]
        outputs = translator.translate(images, [image_hints for _, _, image_hints in batch] if hints else None)
        for (destination, _, _), output in zip(batch, outputs):
            save_image(output, destination)
        if progress:
            progress(len(batch))

    for path, destination in zip(paths, destinations):
        image = read_rgb(path)
        bucket = pending.setdefault(image.shape, [])
        bucket.append((destination, image, hints.of(Path(path), image.shape[:2]) if hints else []))
        if len(bucket) >= translator.batch_size:
            flush(image.shape)
        elif sum(map(len, pending.values())) > PENDING_BATCHES * translator.batch_size:
            flush(max(pending, key=lambda shape: len(pending[shape])))
    while pending:
        flush(next(iter(pending)))
    return destinations
