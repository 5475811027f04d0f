"""Training and evaluation data: A|B side-by-side pairs, or plain colour images for Lab colorization.

Images are decoded and resized once into a uint8 cache, so JPEG/PNG decoding stays out of the
training loop; each step only slices the random crop, flips and scales to [-1, 1]. Given a cache
folder, that cache is a memory-mapped ``.npy`` file built once per dataset (keyed by the files'
paths, sizes and modification times, and the load size): later runs, and every process of a
multi-GPU run, map it instead of decoding again, and the training process's own memory stays
flat however many images there are (the OS pages the file in and out). The crops
and flips of an epoch, and a hint model's simulated hints (``pix2pix.data.hints``), are drawn from a
generator seeded by (seed, epoch), so any step of any epoch can be rebuilt exactly when training resumes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pix2pix.data.hints import simulate_hints
from pix2pix.data.images import open_rgb
from pix2pix.errors import UserError
from pix2pix.files import atomic_file
from pix2pix.options import epoch_seed
from pix2pix.task import Task


def resize(image: Image.Image, size: int) -> Image.Image:
    return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.BICUBIC)


def resize_input(image: Image.Image, size: int, task: Task) -> Image.Image:
    """``resize`` for the network's input; an inpainting input's pure-white hole stays pure white, with sharp edges.

    Bicubic would blur the hole's edges into the given pixels around it (a whitish rim the target
    lacks, which the kept pixels would carry into training). Instead every output pixel that the
    bicubic kernel draws from the hole at all becomes hole (the hole grows by the kernel's reach,
    about 2 px), so the given pixels left are untouched by white: resized as the target's are.
    """
    if not task.inpaint or image.size == (size, size):
        return resize(image, size)
    pixels = np.asarray(image)
    hole = Image.fromarray((pixels == 255).all(axis=2).astype(np.float32))  # Task.hole_mask in uint8; mode F keeps the kernel's negative lobes
    resized = np.array(resize(image, size))
    resized[np.asarray(resize(hole, size)) != 0] = 255
    return Image.fromarray(resized)


CACHE_VERSION = 1  # bump when the cache layout changes


class TrainingSet:
    """All training pairs, resized to ``load_size`` squared, as one uint8 array.

    ``pixels`` is ``(N, 2, load, load, 3)``: input and target per item (``(N, 1, ...)`` for
    colorization, where both come from the one photo); in memory, or memory-mapped from
    ``cache_dir``. Random jitter (the reference default): the same random ``crop_size`` crop and
    the same horizontal flip for input and target.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        task: Task,
        load_size: int,
        crop_size: int,
        flip: bool = True,
        progress: Callable[[int], None] | None = None,
        cache_dir: Path | None = None,
    ):
        if not paths:
            raise UserError("no training images")
        if crop_size > load_size:
            raise UserError(f"crop size {crop_size} is larger than load size {load_size}")
        self.task, self.load_size, self.crop_size, self.flip = task, load_size, crop_size, flip
        self.names = [Path(p).stem for p in paths]
        shape = (len(paths), 1 if task.lab_colorization else 2, load_size, load_size, 3)
        if cache_dir is None:
            self.pixels = np.empty(shape, np.uint8)
            self._decode(paths, self.pixels, progress)
            return
        cache = Path(cache_dir) / f"pairs-{cache_key(paths, task, load_size)}.npy"
        self.pixels = _mapped_cache(cache, shape)
        if self.pixels is None:
            try:
                with atomic_file(cache, suffix=".npy") as tmp:
                    pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                    _allocate(tmp)
                    self._decode(paths, pixels, progress)
                    pixels.flush()
                    del pixels
            except OSError as exc:
                raise UserError(f"{cache_dir}: cannot write the image cache there ({exc.strerror or exc})") from None
            self.pixels = np.load(cache, mmap_mode="r")
        elif progress:
            progress(len(paths))

    def _decode(self, paths: Sequence[Path], pixels: np.ndarray, progress: Callable[[int], None] | None) -> None:
        for index, path in enumerate(paths):
            source, target = self.task.split(Path(path), open_rgb(path))
            pixels[index, 0] = np.asarray(resize_input(source, self.load_size, self.task))
            if pixels.shape[1] == 2:
                pixels[index, 1] = np.asarray(resize(target, self.load_size))
            if progress:
                progress(1)

    def __len__(self) -> int:
        return len(self.names)

    def epoch_plan(self, seed: int, epoch: int) -> EpochPlan:
        """Order, crop offsets and flips of one epoch, a pure function of (seed, epoch)."""
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        n = len(self)
        order = torch.randperm(n, generator=generator)
        offsets = torch.randint(0, self.load_size - self.crop_size + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        if not self.flip:
            flips.zero_()
        # drawn last, so the order, crops and flips of a run without hints stay as they were
        hint_seeds = torch.randint(0, 2**62, (n,), generator=generator) if self.task.hints else None
        return EpochPlan(order, offsets, flips, hint_seeds)

    def batch(self, plan: EpochPlan, index: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of an epoch: (inputs, targets), each ``(B, C, crop, crop)`` in [-1, 1]."""
        inputs, targets = [], []
        for position in range(index * batch_size, min((index + 1) * batch_size, len(plan.order))):
            item = int(plan.order[position])
            y, x = (int(v) for v in plan.offsets[position])
            pair = self.pixels[item, :, y : y + self.crop_size, x : x + self.crop_size]
            if plan.flips[position]:
                pair = pair[:, :, ::-1]
            network_input, network_target = self.task.to_tensors(pair[0], pair[-1])
            if plan.hint_seeds is not None:
                hints_generator = torch.Generator().manual_seed(int(plan.hint_seeds[position]))
                network_input[1:] = simulate_hints(network_target, hints_generator)
            inputs.append(network_input)
            targets.append(network_target)
        return torch.stack(inputs), torch.stack(targets)

    def fixed_batch(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` items, centre-cropped and unflipped (with the same hints): the same samples every time."""
        count = min(count, len(self))
        centre = (self.load_size - self.crop_size) // 2
        hint_seeds = torch.arange(count) if self.task.hints else None
        plan = EpochPlan(torch.arange(count), torch.full((count, 2), centre), torch.zeros(count, dtype=torch.bool), hint_seeds)
        return self.batch(plan, 0, count)


def cache_key(paths: Sequence[Path], task: Task, load_size: int) -> str:
    """Names a cache: what goes into it, and each file's identity (path, size, modification time)."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{task.direction}|{task.lab_colorization}|{task.inpaint}|{load_size}".encode())
    for path in paths:
        stat = Path(path).stat()
        # fsencode: the name's own bytes, also where they are not UTF-8 (the same bytes as .encode() where they are)
        digest.update(b"|" + os.fsencode(Path(path).resolve()) + f"|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _allocate(path: Path) -> None:
    """Reserve the disk blocks of a new, sparse cache file before any pixel is written through its memory map:
    a full disk is then an ENOSPC error here, not a SIGBUS (the process killed, no message) in the middle.
    Not on macOS, which has no posix_fallocate."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as handle:
        os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)


def _mapped_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cache file mapped, if it exists and holds a uint8 array of the expected shape; else None (rebuild it)."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return array if array.shape == shape and array.dtype == np.uint8 else None


@dataclass
class EpochPlan:
    order: torch.Tensor
    offsets: torch.Tensor
    flips: torch.Tensor
    hint_seeds: torch.Tensor | None = None  # a hint model's: the seed of each position's simulated hints

    def shard(self, rank: int, world_size: int) -> EpochPlan:
        """One process's share, as torch's DistributedSampler deals it: every ``world_size``-th position
        from ``rank``, wrapping round to the start so that every process runs the same number of steps."""
        per_rank = -(-len(self.order) // world_size)
        positions = torch.arange(rank, per_rank * world_size, world_size) % len(self.order)
        hint_seeds = None if self.hint_seeds is None else self.hint_seeds[positions]
        return EpochPlan(self.order[positions], self.offsets[positions], self.flips[positions], hint_seeds)


def load_eval_pair(path: Path, task: Task, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One evaluation file, no jitter: (input tensor, target tensor, target as uint8 RGB).

    ``size`` resizes to a square like the reference test; ``None`` keeps the native size.
    """
    source, target = task.split(Path(path), open_rgb(path))
    if size:
        source, target = resize_input(source, size, task), resize(target, size)
    target_rgb = np.asarray(target)
    network_input, network_target = task.to_tensors(np.asarray(source), target_rgb)
    return network_input, network_target, target_rgb
