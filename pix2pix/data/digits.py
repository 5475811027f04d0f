"""Labelled handwritten digits for the conditional GAN: scikit-learn's 8x8 digits or MNIST's IDX files,
resized to 32x32."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from pix2pix.errors import UserError
from pix2pix.options import epoch_seed

IMAGE_SIZE = 32
N_CLASSES = 10

IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: uint8 data, 3 and 1 dimensions
MNIST_FILES = {IDX_IMAGES: "train-images-idx3-ubyte", IDX_LABELS: "train-labels-idx1-ubyte"}
MAX_IDX_BYTES = 1 << 30  # refuse gzip bombs: full MNIST is 47 MB unpacked


@dataclass
class Digits:
    """Labelled digits as ``(N, 32, 32)`` uint8 images (white ink on black) and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def epoch_order(self, seed: int, epoch: int) -> torch.Tensor:
        """The order of one epoch, a pure function of (seed, epoch), so a resumed run rebuilds it."""
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] as ``(B, 1, 32, 32)`` and their labels."""
        return self.images[indices].unsqueeze(1).float() / 127.5 - 1.0, self.labels[indices]


def _resize(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> uint8 ``(N, 32, 32)``, bicubic like the pix2pix data."""
    batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)
    resized = F.interpolate(batch, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=False)
    return resized.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def load_sklearn_digits() -> Digits:
    """The 1,797 handwritten 8x8 digits that ship with scikit-learn (values 0..16): no network."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Digits(_resize(bunch.images * (255.0 / 16.0)), torch.from_numpy(bunch.target).long(), "sklearn-digits")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One IDX file (MNIST's format: big-endian magic and sizes, then uint8 values), gzipped or not."""
    path, gzipped = Path(path), False
    try:
        with path.open("rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as handle:
            raw = handle.read(MAX_IDX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: unreadable{' gzip' if gzipped else ''} file ({exc})") from None
    if len(raw) > MAX_IDX_BYTES:
        raise UserError(f"{path}: more than {MAX_IDX_BYTES} bytes unpacked; not an MNIST file")
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise UserError(f"{path}: not an IDX {'image' if magic == IDX_IMAGES else 'label'} file (magic number {found}, expected {magic})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(f"{path}: {len(raw)} bytes, expected {expected} for {' x '.join(map(str, shape))} values (truncated or corrupt)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _idx_file(folder: Path, magic: int) -> Path:
    name = MNIST_FILES[magic]
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{folder}: no {name} or {name}.gz (the standard MNIST training files)")


def load_mnist(folder: Path) -> Digits:
    """MNIST's training set from the standard IDX files in ``folder``, checked and resized to 32x32."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a directory")
    images_path, labels_path = _idx_file(folder, IDX_IMAGES), _idx_file(folder, IDX_LABELS)
    images, labels = read_idx(images_path, IDX_IMAGES), read_idx(labels_path, IDX_LABELS)
    if len(images) == 0:
        raise UserError(f"{images_path}: holds no images")
    if min(images.shape[1:]) < 8:
        raise UserError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels; at least 8x8 expected")
    if len(labels) != len(images):
        raise UserError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if labels.max() >= N_CLASSES:
        raise UserError(f"{labels_path}: label {int(labels.max())} out of range (digits are 0..9)")
    scarce = np.flatnonzero(np.bincount(labels, minlength=N_CLASSES) < 2)
    if len(scarce):
        raise UserError(f"{labels_path}: fewer than 2 images of digit {', '.join(map(str, scarce))}; every digit needs examples to learn and judge")
    return Digits(_resize(images), torch.from_numpy(labels.astype(np.int64)), "mnist")


def load_data(mnist_dir: str | Path | None) -> Digits:
    return load_mnist(Path(mnist_dir)) if mnist_dir else load_sklearn_digits()
