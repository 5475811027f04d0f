"""Dataset preparation operations (the reference's ``tools/process.py``) and a folder runner.

The operations are pure functions from RGB images to an RGB image. ``process_folder`` runs one
over a folder in a process pool and writes the whole output folder atomically, so a failed or
interrupted run never leaves half a dataset behind.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.data.images import IMAGE_SUFFIXES, encode_image, list_images, open_rgb
from pix2pix.errors import UserError
from pix2pix.files import (
    atomic_directory,
    atomic_write_text,
    check_output_separate,
    check_unique_outputs,
)
from pix2pix.processes import signal_on_parent_death

# name -> (PIL format, file suffix, save options)
FORMATS: dict[str, tuple[str, str, dict]] = {
    "png": ("PNG", ".png", {}),  # by images.encode_png
    "jpg": ("JPEG", ".jpg", {"quality": 95}),
    "webp": ("WEBP", ".webp", {"lossless": True}),
    "bmp": ("BMP", ".bmp", {}),
    "tiff": ("TIFF", ".tif", {"compression": "tiff_lzw"}),
}

SKIPPED_LIST = "skipped.txt"


# --- operations -------------------------------------------------------------------------------


def resize(image: Image.Image, size: int = 256, pad: bool = False) -> Image.Image:
    """Centre-crop (or, with ``pad``, centre-pad with black) to a square, then scale to ``size``.

    Downscaling averages areas (like the reference's AREA resize) so thin lines do not alias;
    upscaling is bicubic. Whole-number factors use PIL's ``reduce``: 4x faster than its BOX
    resize, and at factors 2 and 4 the exactly rounded block mean, where BOX is one level off
    in a third of the pixels.
    """
    if size < 1:
        raise UserError(f"size must be at least 1 pixel, got {size}")
    width, height = image.size
    if width != height:
        if pad:
            side = max(width, height)
            square = Image.new("RGB", (side, side), (0, 0, 0))
            square.paste(image, ((side - width) // 2, (side - height) // 2))
            image = square
        else:
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
    side = image.size[0]
    if side > size and side % size == 0:
        return image.reduce(side // size)
    if side > size:
        return image.resize((size, size), Image.Resampling.BOX)
    if side < size:
        return image.resize((size, size), Image.Resampling.BICUBIC)
    return image


def blank(image: Image.Image, fraction: float = 0.3) -> Image.Image:
    """Paint a white square over the centre: the input of an inpainting pair.

    Square side ``int(fraction * W)`` at offset ``int(W / 2 - side / 2)``, as in the reference
    (256 px -> a 76 px square at 90).
    """
    width, height = image.size
    if width != height:
        raise UserError(f"non-square image ({width}x{height}); run resize first")
    side = int(fraction * width)
    if side < 1:
        raise UserError(f"too small to blank: {width}x{height} px gives a {side} px square at fraction {fraction}")
    offset = int(width / 2 - side / 2)
    array = np.array(image)
    array[offset : offset + side, offset : offset + side, :] = 255
    return Image.fromarray(array)


def combine(a: Image.Image, b: Image.Image) -> Image.Image:
    """Put A on the left and B on the right: the one-image pair format every pix2pix reads."""
    if a.size != b.size:
        raise UserError(f"differing sizes ({a.size[0]}x{a.size[1]} and {b.size[0]}x{b.size[1]})")
    pair = Image.new("RGB", (a.size[0] * 2, a.size[1]), color=None)  # not cleared: both halves are pasted
    pair.paste(a, (0, 0))
    pair.paste(b, (a.size[0], 0))
    return pair


def grayscale(image: Image.Image) -> Image.Image:
    """Gray (ITU-R 601 luma) repeated in three channels, so pairs stay RGB|RGB."""
    return image.convert("L").convert("RGB")


def edges(image: Image.Image, sigma: float = 2.0) -> Image.Image:
    """Canny edges drawn black on white in three channels, like the edges2* datasets."""
    from skimage.feature import canny

    gray = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    found = canny(gray, sigma=sigma)
    return Image.fromarray(np.where(found, 0, 255).astype(np.uint8)).convert("RGB")


# --- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One output image: its name (without suffix), its input files, or why it cannot be made."""

    name: str
    inputs: tuple[Path, ...]
    error: str | None = None


def folder_jobs(input_dir: Path) -> list[Job]:
    """One job per image in ``input_dir``."""
    return [Job(path.stem, (path,)) for path in list_images(input_dir)]


def paired_jobs(a_dir: Path, b_dir: Path) -> list[Job]:
    """Jobs pairing images of ``a_dir`` and ``b_dir`` by base name (suffixes may differ).

    An image without a partner becomes a job carrying the error, so ``skip_bad`` can list it.
    """
    a_files, b_files = _by_stem(list_images(a_dir)), _by_stem(list_images(b_dir))
    jobs = []
    for stem in sorted(a_files.keys() | b_files.keys()):
        a, b = a_files.get(stem), b_files.get(stem)
        if a and b:
            jobs.append(Job(stem, (a, b)))
        elif a:
            jobs.append(Job(stem, (a,), f"{a}: no partner in {b_dir} (expected {Path(b_dir) / stem}.png or .jpg ...)"))
        else:
            jobs.append(Job(stem, (b,), f"{b}: no partner in {a_dir} (expected {Path(a_dir) / stem}.png or .jpg ...)"))
    return jobs


def _by_stem(paths: Iterable[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise UserError(f"{found[path.stem]} and {path}: same base name, which one is meant is ambiguous")
        found[path.stem] = path
    return found


# --- the folder runner ----------------------------------------------------------------------------


@dataclass
class FolderResult:
    written: int
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def default_workers() -> int:
    """The CPU cores this process may use (affinity-aware, unlike ``os.cpu_count``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def process_folder(
    operation: Callable[..., Image.Image],
    jobs: Sequence[Job],
    output_dir: Path,
    *,
    workers: int | None = None,
    format: str = "png",
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FolderResult:
    """Run ``operation`` on every job's input images and write ``output_dir/<name>.<format>``.

    ``operation`` must be picklable (a module-level function or a ``functools.partial`` of one)
    when ``workers > 1``. A bad input stops everything with a ``UserError`` naming the file and
    leaves ``output_dir`` untouched; with ``skip_bad`` it is skipped and listed in ``skipped.txt``.
    """
    if format not in FORMATS:
        raise UserError(f"unknown output format {format!r} (choose from {', '.join(FORMATS)})")
    if not jobs:
        raise UserError(f"no images to process (looked for {', '.join(IMAGE_SUFFIXES)})")
    check_output_separate(Path(output_dir), {path.parent for job in jobs for path in job.inputs})
    _check_unique_names(jobs)
    workers = max(1, min(workers or default_workers(), len(jobs)))
    start = time.perf_counter()
    with atomic_directory(Path(output_dir)) as staging:
        task = functools.partial(_run_job, operation, staging, format)
        if workers == 1:
            result = _collect(map(task, jobs), len(jobs), skip_bad, progress)
        else:
            chunksize = max(1, min(16, len(jobs) // (workers * 8)))
            pool = _worker_pool(workers)
            try:
                result = _collect(pool.map(task, jobs, chunksize=chunksize), len(jobs), skip_bad, progress)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        if result.skipped:
            atomic_write_text(staging / SKIPPED_LIST, "".join(f"{line}\n" for line in result.skipped))
    result.seconds = time.perf_counter() - start
    return result


def _check_unique_names(jobs: Sequence[Job]) -> None:
    check_unique_outputs((job.inputs[0], f"{job.name}.*") for job in jobs)


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that die with this one, however it dies (see ``_die_with_parent``).

    Forked on Linux whatever Python's default: a worker's parent must be this process.
    """
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),))


def _die_with_parent(parent_pid: int) -> None:
    """Pool worker set-up: a worker whose stage was killed would otherwise wait for work forever, under PID 1.

    The kernel kills it when its parent dies (Linux); if that already happened, it exits now.
    SIGTERM kills it outright: the parent's handler (``atomic_directory`` cleanup) is not for workers.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal_on_parent_death(signal.SIGKILL, parent_pid)


def _collect(results: Iterable[str | None], total: int, skip_bad: bool, progress) -> FolderResult:
    result = FolderResult(written=0)
    for done, error in enumerate(results, start=1):
        if error is None:
            result.written += 1
        elif skip_bad:
            result.skipped.append(error)
        else:
            raise UserError(error)
        if progress is not None:
            progress(done, total)
    return result


def _run_job(operation: Callable[..., Image.Image], staging: Path, format: str, job: Job) -> str | None:
    """Make one output file; return the error message instead of raising (cheap to pickle back)."""
    if job.error:
        return job.error
    try:
        images = [open_rgb(path) for path in job.inputs]
        try:
            output = operation(*images)
        except UserError as exc:
            raise UserError(f"{' and '.join(map(str, job.inputs))}: {exc}") from None
    except UserError as exc:
        return str(exc)
    pil_format, suffix, options = FORMATS[format]
    (staging / f"{job.name}{suffix}").write_bytes(encode_image(output, pil_format, **options))
    return None
