"""Reading and writing images safely: any common format in, 8-bit RGB arrays out, atomic writes."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import UserError
from .files import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (numerically where names are numbers)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a directory")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"{folder}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> tuple:
    stem = path.stem
    return (0, int(stem), path.name) if stem.isdigit() else (1, 0, path.name)


def to_rgb8(image: Image.Image) -> Image.Image:
    """Normalise gray, palette, RGBA, CMYK and 16-bit images to 8-bit RGB (alpha over white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


def open_rgb(path: Path) -> Image.Image:
    """Open an image as 8-bit RGB with EXIF orientation applied; any failure names the file."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                return to_rgb8(image)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"{path}: too many pixels, refused as a possible decompression bomb ({exc})") from None
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except Image.UnidentifiedImageError:
        raise UserError(f"{path}: not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: unreadable or truncated image ({exc})") from None


def read_rgb(path: Path) -> np.ndarray:
    """An image file as a ``(H, W, 3)`` uint8 array."""
    return np.asarray(open_rgb(path))


def save_image(array_or_image, path: Path, format: str | None = None) -> None:
    """Save an RGB uint8 array (or PIL image) atomically; the format follows the suffix."""
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(np.asarray(array_or_image))
    path = Path(path)
    fmt = format or Image.registered_extensions().get(path.suffix.lower(), "PNG")
    buffer = io.BytesIO()
    # zlib level 1: about 2.5x faster than PIL's default for 10-15 % larger photo PNGs
    image.save(buffer, format=fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
    atomic_write_bytes(path, buffer.getvalue())
