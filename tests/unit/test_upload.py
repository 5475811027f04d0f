"""The demo server's upload decoding, in-process: the same pixels as reading the file, and clean refusals.

The server itself (HTTP API, page in headless Chromium, signals): tests/integration/test_serve.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.apps.serve import Limits, UploadError, decode_upload
from pix2pix.data.images import read_rgb
from pix2pix.errors import UserError


def photo_files(folder: Path) -> list[Path]:
    """Files whose decoding does something: EXIF rotation, a palette with transparency, 16-bit gray, alpha."""
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees
    rgb.save(folder / "phone.jpg", exif=exif.tobytes())
    rgb.quantize(16).save(folder / "palette.png", transparency=0)
    Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16)).save(folder / "deep.png")
    rgb.convert("RGBA").save(folder / "alpha.webp", lossless=True)
    return sorted(folder.iterdir())


def test_an_upload_decodes_exactly_as_the_same_file(tmp_path):
    for path in photo_files(tmp_path):
        from_file, uploaded = read_rgb(path), decode_upload(path.read_bytes(), Limits())
        assert uploaded.dtype == np.uint8 and np.array_equal(from_file, uploaded), path.name
    assert read_rgb(tmp_path / "phone.jpg").shape == (40, 24, 3)  # turned upright


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_a_bad_upload_is_a_400_with_the_file_message_minus_the_name(tmp_path, kind, random_png):
    data = {"text": b"hello, this is text", "truncated": random_png(64, 64)[:2000]}[kind]
    with pytest.raises(UploadError) as upload_error:
        decode_upload(data, Limits())
    (tmp_path / "bad.png").write_bytes(data)
    with pytest.raises(UserError) as file_error:
        read_rgb(tmp_path / "bad.png")
    message = str(upload_error.value)
    assert upload_error.value.status == 400 and "\n" not in message
    assert str(file_error.value) == f"{tmp_path / 'bad.png'}: {message}"


def test_a_decompression_bomb_upload_is_413_even_under_the_pixel_limit(tmp_path, bomb_png):
    with pytest.raises(UploadError) as error:
        decode_upload(bomb_png(tmp_path / "bomb.png").read_bytes(), Limits(max_pixels=10**9))
    assert error.value.status == 413 and "decompression bomb" in str(error.value)
