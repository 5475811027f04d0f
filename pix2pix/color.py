"""Lab colour space for colorization, through scikit-image's conversion (sRGB, D65).

The network sees L/50 - 1 (one channel in [-1, 1]) and predicts ab/110 (two channels), the
scaling all three reference implementations use.
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage import color

L_SCALE = 50.0
AB_SCALE = 110.0


def rgb_to_lab_normalized(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 sRGB -> ``(3, H, W)`` float32 [L/50 - 1, a/110, b/110]."""
    lab = color.rgb2lab(rgb).astype(np.float32)
    lab[..., 0] = lab[..., 0] / L_SCALE - 1.0
    lab[..., 1:] /= AB_SCALE
    return np.ascontiguousarray(lab.transpose(2, 0, 1))


def lab_normalized_to_rgb(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """``(H, W)`` normalised L and ``(2, H, W)`` normalised ab -> ``(H, W, 3)`` uint8 sRGB.

    ab is clamped to [-1, 1] and L to [0, 100] first; colours outside the sRGB gamut clip.
    """
    lab = np.empty(lightness.shape + (3,), dtype=np.float64)
    lab[..., 0] = np.clip((lightness + 1.0) * L_SCALE, 0.0, 100.0)
    lab[..., 1:] = np.clip(np.moveaxis(ab, 0, -1), -1.0, 1.0) * AB_SCALE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "negative Z values" for out-of-gamut colours: clipped below
        rgb = color.lab2rgb(lab)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def gray_rgb(lightness: np.ndarray) -> np.ndarray:
    """The L channel alone as a neutral-gray RGB image (what the colorization model sees)."""
    return lab_normalized_to_rgb(lightness, np.zeros((2,) + lightness.shape, dtype=np.float32))
