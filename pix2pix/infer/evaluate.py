"""Run a trained generator over a folder of pairs and score it against the targets.

Unlike the reference, any image size works: the input is reflect-padded up to the U-Net's
multiple (2^depth) and the output cropped back to the input's size.
"""

from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from pix2pix.data.dataset import load_eval_pair
from pix2pix.data.hints import CURVE_COUNTS, simulate_hints
from pix2pix.data.images import open_rgb, save_image
from pix2pix.files import atomic_write_text, check_unique_outputs
from pix2pix.infer.summary import write_summary
from pix2pix.nn.device import Acceleration
from pix2pix.nn.networks import replace_batch_norms
from pix2pix.prep.imageops import default_workers
from pix2pix.task import Task

EVAL_MODES = ("train", "eval")
CURVE_METRICS = ("psnr", "ciede2000")  # scored per number of hints for a hint model


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom/right of ``(N, C, H, W)`` to multiples of ``multiple``; returns the old (H, W).

    Reflect padding where the image is large enough, edge replication where it is not.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (height, width)


def run_generator(generator: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Translate a batch of any size: pad to the network's multiple, run, crop back."""
    padded, (height, width) = pad_to_multiple(inputs, 2**generator.depth)
    return generator(padded)[..., :height, :width]


class PerImageBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training-mode statistics come from each image of the batch alone.

    The paper's test-time "train mode" normalises a lone image by its own statistics. This gives
    every image of a batch exactly those statistics, so batching changes only speed (and the
    order in which dropout masks are drawn). Running statistics are neither used nor updated;
    in eval mode it is plain batch norm. Parameter and buffer names are batch norm's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)

    @classmethod
    def like(cls, norm: nn.BatchNorm2d) -> PerImageBatchNorm:
        """``norm`` itself if it already is one, else a ``PerImageBatchNorm`` with its settings and state."""
        if isinstance(norm, cls):
            return norm
        state = norm.state_dict()
        device = next(iter(state.values())).device if state else None
        per_image = cls(norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats, device=device)
        per_image.load_state_dict(state)
        return per_image


def set_eval_mode(generator: nn.Module, mode: str) -> None:
    """``train``: the paper's test-time behaviour (dropout on, each image's own statistics); ``eval``: running stats."""
    if mode not in EVAL_MODES:
        raise ValueError(f"eval mode {mode!r}: expected train or eval")
    if mode == "train":
        replace_batch_norms(generator, PerImageBatchNorm.like)
    generator.train(mode == "train")


def image_names(paths: Sequence[Path]) -> list[str]:
    """Each input's name in ``images/`` and ``metrics.csv``: its stem, with bytes that are not UTF-8 as ``\\xNN``
    text (a CSV, a web page and DVC want text). Two inputs with one name (x.png, x.jpg) are refused."""
    names = [os.fsencode(Path(path).stem).decode("utf-8", "backslashreplace") for path in paths]
    check_unique_outputs((Path(path), f"images/{name}-*.png") for path, name in zip(paths, names))
    return names


def input_baseline(task: Task) -> str:
    """The name of the do-nothing baseline, the input as evaluate shows it scored as an output: ``grey`` for
    L -> ab colorization (the L channel alone, ab = 0), else ``identity`` (for ab -> L: the ab at mid lightness)."""
    return "grey" if task.lab_colorization and task.direction == "AtoB" else "identity"


def mean_target_image(
    paths: Sequence[Path], task: Task, size: int | None = None, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """The pixel-wise mean of the target images of ``paths`` (the training split) as ``(H, W, 3)`` uint8.

    The baseline that knows the data set but not the input. Targets are resized like the eval
    images (``size`` squared), or with ``size`` None to the first target's size.
    """
    total, shape = None, (size, size) if size else None
    for path in paths:
        target = task.split(Path(path), open_rgb(path))[1]
        shape = shape or target.size
        if target.size != shape:
            target = target.resize(shape, Image.Resampling.BICUBIC)
        pixels = np.asarray(target, dtype=np.float64)
        total = pixels if total is None else total + pixels
        if progress:
            progress(1)
    if total is None:
        raise ValueError("no training images to average")
    return (total / len(paths) + 0.5).astype(np.uint8)


def resized_like(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` resized (bicubic) to an eval image's ``(H, W, 3)`` shape, as is if it has it."""
    if image.shape == shape:
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BICUBIC))


def evaluate(
    generator: nn.Module,
    task: Task,
    paths: Sequence[Path],
    output_dir: Path,
    eval_mode: str = "train",
    size: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 8,
    acceleration: Acceleration | None = None,
    mean_target: np.ndarray | None = None,
) -> dict:
    """Write ``images/NAME-{inputs,outputs,targets}.png``, ``metrics.csv``, ``metrics.json`` and ``evaluation.json``;
    returns the summary the two JSON files hold together (``pix2pix.infer.summary``).

    metrics.json holds the mean of each metric over all images and ``count``; evaluation.json ``eval_mode``,
    ``directions`` (``lower`` or ``higher`` is better, per metric) and ``baselines``: the same
    means for trivial outputs scored by the same code, ``input_baseline(task)`` (the input
    itself) and, given ``mean_target`` (``mean_target_image`` of the training split), ``mean``.
    A model that does not beat them has learnt nothing worth its cost.
    An inpainting model's outputs keep the input's given pixels (``Task.composite``), and its
    metrics add ``hole_l1`` and ``hole_psnr``, scored inside the input's hole alone (where the
    identity baseline is the white square). A hint model's inputs carry no
    hints; evaluation.json adds its ``hint_curve``: the mean of each of ``CURVE_METRICS`` with each of ``CURVE_COUNTS``
    hints simulated from the target (``pix2pix.data.hints``; image i's from seed i, so the same
    hints every run, and more hints add to fewer; 0 is the model's own scores), and their
    ``directions``. Images of one size go through the
    generator ``batch_size`` at a time; in ``train`` mode each keeps its own normalisation
    statistics (``PerImageBatchNorm``), so outputs are those of one image at a time, as in the
    reference, but for which dropout mask each image draws. PNG encoding and metrics run in
    writer threads, overlapping the next forward pass. ``acceleration`` (mixed precision,
    channels_last, compile, the CPU convolutions) defaults to fp32 on the generator's device,
    with the CPU convolutions on the CPU.
    """
    names = image_names(paths)
    output_dir = Path(output_dir)
    images_dir = output_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    set_eval_mode(generator, eval_mode)
    accel = acceleration or Acceleration(next(generator.parameters()).device)
    network = accel.for_inference(generator)
    torch.manual_seed(seed)  # dropout at test time (train mode) is then reproducible
    baseline = input_baseline(task)
    mean_like = functools.cache(lambda shape: resized_like(mean_target, shape))

    def finish(name: str, input_rgb: np.ndarray, output_rgb: np.ndarray, target_rgb: np.ndarray, hole: np.ndarray | None) -> tuple[dict, dict]:
        for suffix, image in (("inputs", input_rgb), ("outputs", output_rgb), ("targets", target_rgb)):
            save_image(image, images_dir / f"{name}-{suffix}.png")
        from pix2pix.infer.metrics import (
            image_metrics,  # SciPy's ~0.8 s import happens here, beside the next forward pass
        )

        baselines = {baseline: input_rgb}
        if mean_target is not None:
            baselines["mean"] = mean_like(target_rgb.shape)
        scores = {key: image_metrics(image, target_rgb, task.lab_colorization, hole) for key, image in baselines.items()}
        return {"name": name, **image_metrics(output_rgb, target_rgb, task.lab_colorization, hole)}, scores

    def curve_scores(output_rgb: np.ndarray, target_rgb: np.ndarray) -> dict:
        from pix2pix.infer.metrics import image_metrics

        scores = image_metrics(output_rgb, target_rgb, colorization=True)
        return {metric: scores[metric] for metric in CURVE_METRICS}

    rows: list[Future] = []
    hinted_rows: dict[int, list[Future]] = {count: [] for count in CURVE_COUNTS if count and task.hints}
    pending: list[tuple[str, torch.Tensor, np.ndarray, torch.Tensor]] = []

    def flush(writer: ThreadPoolExecutor) -> None:
        inputs = accel.to_device(torch.stack([item[1] for item in pending]))
        with accel.autocast():
            outputs = run_generator(network, inputs).float()
        for (name, network_input, target_rgb, _), output in zip(pending, outputs.cpu()):
            input_rgb, output_rgb = task.to_rgb(network_input, task.composite(network_input, output))
            hole = task.hole_mask(network_input)[0].numpy() if task.inpaint else None
            rows.append(writer.submit(finish, name, input_rgb, output_rgb, target_rgb, hole))
        first = len(rows) - len(pending)  # the index of pending[0] among all images: its hints' seed
        for count, futures in hinted_rows.items():
            hinted = torch.stack([
                torch.cat([network_input[:1], simulate_hints(network_target, torch.Generator().manual_seed(first + offset), count)])
                for offset, (_, network_input, _, network_target) in enumerate(pending)
            ])  # fmt: skip
            with accel.autocast():
                outputs = run_generator(network, accel.to_device(hinted)).float()
            for (_, _, target_rgb, _), network_input, output in zip(pending, hinted, outputs):
                futures.append(writer.submit(curve_scores, task.to_rgb(network_input, output)[1], target_rgb))
        if progress:
            progress(len(pending))
        pending.clear()

    # PNGs and metrics (NumPy, zlib, SciPy: mostly outside the GIL) on up to 4 threads: beside a
    # fast generator they are the bottleneck (here, with a trivial one: 73 img/s on one thread,
    # 102 on two); beside the CPU's own forward pass more threads neither help nor hurt
    writers = min(4, default_workers())
    with torch.inference_mode(), ThreadPoolExecutor(max_workers=writers) as writer:
        for path, name in zip(paths, names):
            network_input, network_target, target_rgb = load_eval_pair(Path(path), task, size)
            if pending and (len(pending) == batch_size or pending[0][1].shape != network_input.shape):
                flush(writer)
            pending.append((name, network_input, target_rgb, network_target))
        if pending:
            flush(writer)
    results, baseline_scores = zip(*(row.result() for row in rows)) if rows else ((), ())
    columns = list(results[0]) if results else ["name"]
    table = io.StringIO()
    csv_writer = csv.DictWriter(table, fieldnames=columns, lineterminator="\n")
    csv_writer.writeheader()
    csv_writer.writerows({key: f"{value:.6f}" if isinstance(value, float) else value for key, value in row.items()} for row in results)
    atomic_write_text(output_dir / "metrics.csv", table.getvalue())
    means = {column: float(np.mean([row[column] for row in results])) for column in columns if column != "name"}
    baselines = {
        key: {column: float(np.mean([scores[key][column] for scores in baseline_scores])) for column in means}
        for key in (baseline_scores[0] if baseline_scores else {})
    }
    from pix2pix.infer.metrics import DIRECTIONS  # loaded by now, in the writers

    summary = {
        **means,
        "count": len(rows),
        "eval_mode": eval_mode,
        "directions": {column: DIRECTIONS[column] for column in means},
        "baselines": baselines,
    }
    if task.hints:
        summary["hint_curve"] = {
            "counts": list(CURVE_COUNTS),
            **{
                metric: [means[metric], *(float(np.mean([row.result()[metric] for row in futures])) for futures in hinted_rows.values())]
                for metric in CURVE_METRICS
            },
            "directions": {metric: DIRECTIONS[metric] for metric in CURVE_METRICS},
        }
    write_summary(output_dir, summary)
    return summary
