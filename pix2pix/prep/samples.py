"""Sample colour photos for colorization and inpainting demos, with no download.

Crops (position, scale, mirror) of the real colour photographs that ship inside scikit-image and
scikit-learn. Crops are named after their photo (``astronaut_003.png``) so that
``split --group_by '^(.*)_\\d+'`` keeps every photo in one split.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.data.images import encode_png, open_rgb
from pix2pix.errors import UserError
from pix2pix.files import atomic_directory


# (package, folder inside it, file, fraction of the shorter side around the centre worth cropping).
# Left out: motorcycle_right (a near copy of motorcycle_left) and the gray, synthetic or drawn images.
SOURCES = (
    ("skimage", "data", "astronaut.png", 1.0),
    ("skimage", "data", "chelsea.png", 1.0),
    ("skimage", "data", "coffee.png", 1.0),
    ("skimage", "data", "rocket.jpg", 1.0),
    ("skimage", "data", "motorcycle_left.png", 1.0),
    ("skimage", "data", "hubble_deep_field.jpg", 1.0),
    ("skimage", "data", "retina.jpg", 0.65),  # the fundus is a disc on black
    ("skimage", "data", "ihc.png", 1.0),
    ("sklearn", "datasets/images", "china.jpg", 1.0),
    ("sklearn", "datasets/images", "flower.jpg", 1.0),
)


def source_photos() -> list[tuple[Path, float]]:
    """The photos of ``SOURCES`` found in the installed packages (without importing them)."""
    found = []
    for package, folder, file_name, region in SOURCES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations)), folder, file_name)
        if path.is_file():
            found.append((path, region))
    if not found:
        raise UserError("no sample photos found: install scikit-image or scikit-learn")
    return found


def random_crop(photo: Image.Image, rng: np.random.Generator, size: int, region: float = 1.0) -> Image.Image:
    """A square crop of 40-100 % of the usable centre region, maybe mirrored, resized to ``size``."""
    width, height = photo.size
    usable = min(width, height) * region
    side = usable * rng.uniform(0.4, 1.0)
    cx = width / 2 + rng.uniform(-1, 1) * (usable * (width / min(width, height)) - side) / 2
    cy = height / 2 + rng.uniform(-1, 1) * (usable * (height / min(width, height)) - side) / 2
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    crop = photo.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def write_sample_photos(
    target: Path,
    *,
    count: int = 200,
    size: int = 256,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``count`` crops as ``target/<photo>_<k>.png``, taking photos in turn."""
    if count < 1 or size < 8:
        raise UserError(f"--count must be at least 1 and --size at least 8 (got {count}, {size})")
    sources = source_photos()
    photos = [(path.stem, open_rgb(path), region) for path, region in sources]
    target = Path(target)
    with atomic_directory(target) as staging:
        for index in range(count):
            stem, photo, region = photos[index % len(photos)]
            crop = random_crop(photo, np.random.default_rng([seed, index]), size, region)
            (staging / f"{stem}_{index // len(photos):03d}.png").write_bytes(encode_png(crop))
            if progress:
                progress(index + 1, count)
    return target
