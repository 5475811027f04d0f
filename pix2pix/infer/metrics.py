"""Per-image quality metrics on the 8-bit images a user looks at: L1, PSNR, SSIM, CIEDE2000."""

from __future__ import annotations

import warnings

import numpy as np
from skimage import color
from skimage.metrics import (
    structural_similarity,  # alone: its PSNR would import scipy.stats (0.4 s)
)

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; JSON and averages need a number
# Which way each metric improves: written beside the numbers (metrics.json), so a report never guesses.
DIRECTIONS = {"l1": "lower", "psnr": "higher", "ssim": "higher", "ciede2000": "lower", "hole_l1": "lower", "hole_psnr": "higher"}


def image_metrics(output: np.ndarray, target: np.ndarray, colorization: bool = False, hole: np.ndarray | None = None) -> dict[str, float]:
    """Compare two ``(H, W, 3)`` uint8 images.

    ``l1`` is the mean absolute error on a [0, 1] scale; ``psnr`` in dB (capped at 100);
    ``ssim`` is scikit-image's SSIM over the three channels (7x7 window, smaller for tiny
    images, computed in float32); colorization adds ``ciede2000``, the mean CIEDE2000 colour difference.
    Given an inpainting ``hole`` (``(H, W)`` bool), ``hole_l1`` and ``hole_psnr`` score its pixels
    alone (an empty hole has nothing to get wrong: 0 and the cap, as identical images).
    """
    if output.shape != target.shape:
        raise ValueError(f"shape mismatch: output {output.shape} vs target {target.shape}")
    out = output.astype(np.float64) / 255.0
    ref = target.astype(np.float64) / 255.0
    metrics = {"l1": float(np.abs(out - ref).mean()), "psnr": psnr(out, ref)}
    window = min(7, *output.shape[:2])
    window -= 1 - window % 2  # odd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # in float32: 3x faster than float64 (most of evaluate's per-image work beside the
        # generator), and the same SSIM to 1e-6 on 8-bit images
        ssim = structural_similarity(ref.astype(np.float32), out.astype(np.float32), channel_axis=2, data_range=1.0, win_size=window)
        metrics["ssim"] = float(ssim)
    if colorization:
        metrics["ciede2000"] = float(color.deltaE_ciede2000(color.rgb2lab(ref), color.rgb2lab(out)).mean())
    if hole is not None:
        metrics["hole_l1"] = float(np.abs(out[hole] - ref[hole]).mean()) if hole.any() else 0.0
        metrics["hole_psnr"] = psnr(out[hole], ref[hole])
    return metrics


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    """PSNR in dB of values in [0, 1], capped at ``PSNR_CAP_DB`` (identical or empty: the cap)."""
    if np.array_equal(out, ref):
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, float(10.0 * np.log10(1.0 / np.mean(np.square(out - ref)))))
