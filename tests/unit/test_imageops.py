"""Image operations (resize, blank, combine, grayscale, edges): exact geometry, formats in and out,
and every kind of bad input ending in one clear line with nothing half-written."""

from __future__ import annotations

import functools
import io
import os
import stat
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data import images
from pix2pix.errors import UserError
from pix2pix.prep import imageops

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(path: Path, size: tuple[int, int], colour=RED, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, **save)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def leftovers(folder: Path) -> list[str]:
    """Staging folders or temporary files left next to an output."""
    return [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old"))]


# --- the PNG encoder -----------------------------------------------------------------------------


def png_filters(data: bytes) -> set[int]:
    """The filter number each row of a PNG written by encode_png starts with."""
    with Image.open(io.BytesIO(data)) as image:
        width, height, bands = image.width, image.height, len(image.getbands())
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    return {raw[row * (width * bands + 1)] for row in range(height)}


@pytest.mark.parametrize("shape", [(37, 53, 3), (16, 16, 4), (29, 31), (1, 1, 3), (5, 1)])
def test_png_encoder_is_lossless_for_gray_rgb_and_rgba(shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    ramp = np.broadcast_to(np.arange(shape[1], dtype=np.uint8).reshape((1, -1) + (1,) * (len(shape) - 2)), shape)
    for pixels_in in (noise, np.ascontiguousarray(ramp), np.ascontiguousarray(np.swapaxes(noise, 0, 1))):
        data = images.encode_png(pixels_in)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.format == "PNG" and image.mode == {2: "L", 3: "RGB", 4: "RGBA"}[len(shape) if len(shape) == 2 else shape[2]]
            assert np.array_equal(np.asarray(image), pixels_in)
    assert images.encode_png(Image.fromarray(noise)) == images.encode_png(noise)


def test_png_encoder_splits_long_data_over_several_chunks(monkeypatch):
    photo = np.random.default_rng(3).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    monkeypatch.setattr(images, "PNG_MAX_CHUNK", 1000)
    data = images.encode_png(photo)
    assert data.count(b"IDAT") > 3
    with Image.open(io.BytesIO(data)) as image:
        assert np.array_equal(np.asarray(image), photo)


def test_png_encoder_picks_sub_for_horizontal_and_up_for_vertical_change():
    steps = np.arange(0, 256, 4, dtype=np.uint8)  # each pixel 4 more than its left one ...
    across = steps[None, :] + (np.arange(64, dtype=np.uint8) * 100)[:, None]  # ... each row 100 more than the last
    assert png_filters(images.encode_png(across)) == {1}
    assert png_filters(images.encode_png(np.ascontiguousarray(across.T))) == {2}


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_png_encoder_refuses_what_png_cannot_hold_as_8_bit(bad):
    with pytest.raises(ValueError, match="8-bit gray, RGB or RGBA"):
        images.encode_png(bad)


@pytest.mark.parametrize("mode", ["P", "CMYK", "YCbCr"])
def test_png_encoder_refuses_pil_modes_whose_arrays_mean_something_else(mode):
    with pytest.raises(ValueError, match=f"not {mode}"):
        images.encode_png(Image.new(mode, (4, 4)))


# --- geometry of each operation ------------------------------------------------------------------


def test_resize_centre_crops_to_a_square_then_scales():
    array = np.zeros((32, 48, 3), np.uint8)
    array[:, :8] = RED  # cut away by the centre crop (offset (48 - 32) // 2 = 8)
    array[:, 8:40] = GREEN
    array[:, 40:] = BLUE
    out = imageops.resize(Image.fromarray(array), size=16)
    assert out.size == (16, 16)
    assert (np.asarray(out) == GREEN).all()


def test_resize_pad_centres_on_black():
    out = np.asarray(imageops.resize(Image.new("RGB", (48, 32), GREEN), size=24, pad=True))
    assert out.shape == (24, 24, 3)
    assert (out[:4] == 0).all() and (out[-4:] == 0).all()  # 8 of 48 rows of padding, scaled by 1/2
    assert (out[4:20] == GREEN).all()


def test_resize_averages_areas_when_shrinking_and_enlarges_bicubic():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = np.asarray(imageops.resize(Image.fromarray(checker).convert("RGB"), size=32))
    assert small.min() >= 127 and small.max() <= 128  # a 1-px checkerboard averages to gray, no aliasing
    big = imageops.resize(Image.new("RGB", (16, 16), BLUE), size=40)
    assert big.size == (40, 40) and (np.asarray(big) == BLUE).all()
    same = Image.new("RGB", (20, 20))
    assert imageops.resize(same, size=20) is same


@pytest.mark.parametrize("factor", [2, 4])
def test_resize_by_a_whole_factor_is_the_exactly_rounded_block_mean(factor):
    photo = np.random.default_rng(0).integers(0, 256, (32 * factor, 32 * factor, 3), dtype=np.uint8)
    blocks = photo.astype(np.float64).reshape(32, factor, 32, factor, 3).mean(axis=(1, 3))
    small = np.asarray(imageops.resize(Image.fromarray(photo), size=32))
    assert np.array_equal(small, np.floor(blocks + 0.5).astype(np.uint8))
    odd = np.asarray(imageops.resize(Image.fromarray(photo[:90, :90]), size=32))  # 90/32: BOX weights
    assert odd.shape == (32, 32, 3) and abs(odd.astype(float).mean() - photo[:90, :90].mean()) < 1


@pytest.mark.parametrize(("size", "side", "offset"), [(256, 76, 90), (64, 19, 22), (33, 9, 12)])
def test_blank_paints_the_reference_square(size, side, offset):
    out = np.asarray(imageops.blank(Image.new("RGB", (size, size)), fraction=0.3))
    expected = np.zeros((size, size), bool)
    expected[offset : offset + side, offset : offset + side] = True
    assert ((out == 255).all(axis=2) == expected).all()
    assert (out[~expected] == 0).all()


def test_blank_refuses_non_square_and_too_small_images():
    with pytest.raises(UserError, match="non-square image \\(40x32\\)"):
        imageops.blank(Image.new("RGB", (40, 32)))
    with pytest.raises(UserError, match="too small"):
        imageops.blank(Image.new("RGB", (3, 3)))


def test_combine_puts_a_left_and_b_right():
    out = np.asarray(imageops.combine(Image.new("RGB", (20, 10), RED), Image.new("RGB", (20, 10), BLUE)))
    assert out.shape == (10, 40, 3)
    assert (out[:, :20] == RED).all() and (out[:, 20:] == BLUE).all()
    with pytest.raises(UserError, match="differing sizes \\(20x10 and 10x20\\)"):
        imageops.combine(Image.new("RGB", (20, 10)), Image.new("RGB", (10, 20)))


def test_grayscale_is_three_equal_channels_of_luma():
    out = np.asarray(imageops.grayscale(Image.new("RGB", (8, 8), (200, 100, 50))))
    assert out.shape == (8, 8, 3)
    assert (out == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)).all()


def test_edges_are_black_lines_on_white():
    array = np.zeros((48, 48, 3), np.uint8)
    array[12:36, 12:36] = 255
    out = np.asarray(imageops.edges(Image.fromarray(array), sigma=1.0))
    assert out.shape == (48, 48, 3) and set(np.unique(out)) == {0, 255}
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert (out[:6, :6] == 255).all() and (out[20:28, 20:28] == 255).all()  # flat regions stay white
    assert (out[11:13, 16:32, 0] == 0).any(axis=0).all()  # the top side of the square is an edge


# --- the folder runner -----------------------------------------------------------------------------


def test_every_input_format_and_mode_becomes_rgb_png(tmp_path):
    src = tmp_path / "in"
    solid(src / "a.jpg", (16, 16))
    solid(src / "b.webp", (16, 16))
    solid(src / "c.bmp", (16, 16))
    solid(src / "d.tiff", (16, 16))
    Image.new("L", (16, 16), 90).save(src / "gray.png")
    Image.new("P", (16, 16), 3).save(src / "palette.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(src / "transparent.png")
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(src / "cmyk.jpg")
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(src / "sixteen.png")
    result = imageops.process_folder(imageops.grayscale, imageops.folder_jobs(src), tmp_path / "out", workers=1)
    assert result.written == 9 and not result.skipped
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == sorted(f"{n}.png" for n in ("a", "b", "c", "d", "gray", "palette", "transparent", "cmyk", "sixteen"))
    for name in names:
        assert pixels(tmp_path / "out" / name).shape == (16, 16, 3)
    assert (pixels(tmp_path / "out" / "transparent.png") == 255).all()  # alpha over white
    assert (pixels(tmp_path / "out" / "sixteen.png") == 255).all()  # 16-bit scaled to 8-bit


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees
    solid(tmp_path / "in" / "phone.jpg", (32, 16), exif=exif.tobytes())
    imageops.process_folder(imageops.grayscale, imageops.folder_jobs(tmp_path / "in"), tmp_path / "out", workers=1)
    assert Image.open(tmp_path / "out" / "phone.png").size == (16, 32)


@pytest.mark.parametrize(("format", "suffix", "pil"), [("jpg", ".jpg", "JPEG"), ("webp", ".webp", "WEBP"), ("tiff", ".tif", "TIFF")])
def test_output_format(tmp_path, format, suffix, pil):
    solid(tmp_path / "in" / "x.png", (8, 8))
    imageops.process_folder(imageops.grayscale, imageops.folder_jobs(tmp_path / "in"), tmp_path / "out", format=format, workers=1)
    with Image.open(tmp_path / "out" / f"x{suffix}") as image:
        assert image.format == pil


def test_a_pool_of_workers_writes_the_same_bytes_and_reports_progress(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    calls = []
    op = functools.partial(imageops.resize, size=24)
    imageops.process_folder(op, imageops.folder_jobs(tmp_path), tmp_path / "one", workers=1)
    imageops.process_folder(op, imageops.folder_jobs(tmp_path), tmp_path / "two", workers=2, progress=lambda *a: calls.append(a))
    for index in range(12):
        assert (tmp_path / "one" / f"{index}.png").read_bytes() == (tmp_path / "two" / f"{index}.png").read_bytes()
    assert calls[-1] == (12, 12) and len(calls) == 12


def test_paired_jobs_match_base_names_across_suffixes(tmp_path):
    solid(tmp_path / "a" / "x.jpg", (8, 8))
    solid(tmp_path / "b" / "x.png", (8, 8), BLUE)
    solid(tmp_path / "a" / "lonely.png", (8, 8))
    jobs = imageops.paired_jobs(tmp_path / "a", tmp_path / "b")
    assert [(job.name, [p.name for p in job.inputs], job.error is None) for job in jobs] == [
        ("lonely", ["lonely.png"], False),
        ("x", ["x.jpg", "x.png"], True),
    ]
    assert str(tmp_path / "a" / "lonely.png") in jobs[0].error and str(tmp_path / "b" / "lonely") in jobs[0].error


def test_output_folder_may_not_replace_the_input(tmp_path):
    solid(tmp_path / "in" / "x.png", (8, 8))
    for output in (tmp_path / "in", tmp_path):
        with pytest.raises(UserError, match="must not be or contain the input folder"):
            imageops.process_folder(imageops.grayscale, imageops.folder_jobs(tmp_path / "in"), output, workers=1)
    assert (tmp_path / "in" / "x.png").exists()


def test_two_inputs_with_one_output_name_are_refused(tmp_path):
    solid(tmp_path / "in" / "x.png", (8, 8))
    solid(tmp_path / "in" / "x.jpg", (8, 8))
    with pytest.raises(UserError, match="both would be written as x"):
        imageops.process_folder(imageops.grayscale, imageops.folder_jobs(tmp_path / "in"), tmp_path / "out", workers=1)


# --- the stages, as a user runs them ---------------------------------------------------------------


def test_resize_stage_with_dashed_options(tmp_path, run_cli):
    solid(tmp_path / "in" / "wide.jpg", (64, 32))
    solid(tmp_path / "in" / "tall.png", (20, 40), BLUE)
    result = run_cli("stages.resize", "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--size", "32", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "wrote 2 images" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".pix2pix-output", "tall.png", "wide.png"]
    assert Image.open(tmp_path / "out" / "tall.png").size == (32, 32)


def test_combine_stage_accepts_the_reference_input_dir_name(tmp_path, run_cli):
    solid(tmp_path / "a" / "1.png", (16, 16))
    solid(tmp_path / "b" / "1.jpg", (16, 16), BLUE)
    result = run_cli("stages.combine", "--input_dir", str(tmp_path / "a"), "--b_dir", str(tmp_path / "b"), "-o", str(tmp_path / "ab"))
    assert result.returncode == 0, result.stderr
    out = pixels(tmp_path / "ab" / "1.png")
    assert out.shape == (16, 32, 3) and (out[:, :16] == RED).all()


@pytest.fixture
def bad_inputs(bomb_png):
    def bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
        """Bad files next to a good one, with what the error line must say."""
        solid(folder / "good.png", (16, 16))
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "cut.png")
        data = (folder / "cut.png").read_bytes()
        (folder / "cut.png").write_bytes(data[: len(data) // 2])
        (folder / "empty.jpg").write_bytes(b"")
        (folder / "notes.png").write_text("not a picture")
        bomb_png(folder / "bomb.png")
        return {
            "truncated": (folder / "cut.png", "truncated"),
            "zero-byte": (folder / "empty.jpg", "empty file"),
            "not an image": (folder / "notes.png", "not an image"),
            "bomb": (folder / "bomb.png", "decompression bomb"),
        }

    return bad_inputs


@pytest.mark.parametrize("kind", ["truncated", "zero-byte", "not an image", "bomb"])
def test_a_bad_file_stops_with_one_line_and_no_output(tmp_path, kind, assert_user_error, bad_inputs, run_cli):
    bad = bad_inputs(tmp_path / "all")
    path, reason = bad[kind]
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    solid(folder / "good.png", (16, 16))
    result = run_cli("stages.grayscale", "-i", str(folder), "-o", str(tmp_path / "out"), "--workers", "1")
    assert_user_error(result, str(folder / path.name), reason)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_a_failed_run_leaves_the_previous_output_as_it_was(tmp_path, assert_user_error, bad_inputs, run_cli):
    bad_inputs(tmp_path / "in")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "previous.png").write_bytes(b"old")
    result = run_cli("stages.resize", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--size", "8", "--workers", "2")
    assert_user_error(result)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["previous.png"] and not leftovers(tmp_path)


def test_skip_bad_lists_the_skipped_files(tmp_path, bad_inputs, run_cli):
    bad = bad_inputs(tmp_path / "in")
    result = run_cli("stages.grayscale", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--skip_bad")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".pix2pix-output", "good.png", "skipped.txt"]
    listed = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert len(listed) == len(bad)
    for path, reason in bad.values():
        assert any(line.startswith(str(path)) and reason in line for line in listed), (path, listed)


def test_blank_stage_names_a_non_square_file(tmp_path, assert_user_error, run_cli):
    solid(tmp_path / "in" / "square.png", (16, 16))
    solid(tmp_path / "in" / "wide.png", (20, 16))
    result = run_cli("stages.blank", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert_user_error(result, str(tmp_path / "in" / "wide.png"), "non-square image (20x16)")
    assert not (tmp_path / "out").exists()


def test_blank_stage_names_a_too_small_file(tmp_path, assert_user_error, run_cli):
    solid(tmp_path / "in" / "tiny.png", (2, 2))
    result = run_cli("stages.blank", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--workers", "1")
    assert_user_error(result, str(tmp_path / "in" / "tiny.png"), "too small")


def test_combine_stage_names_both_files_of_a_bad_pair(tmp_path, assert_user_error, run_cli):
    solid(tmp_path / "a" / "1.png", (16, 16))
    solid(tmp_path / "b" / "1.png", (16, 8))
    result = run_cli("stages.combine", "--a_dir", str(tmp_path / "a"), "--b_dir", str(tmp_path / "b"), "-o", str(tmp_path / "ab"))
    assert_user_error(result, f"{tmp_path / 'a' / '1.png'} and {tmp_path / 'b' / '1.png'}", "differing sizes (16x16 and 16x8)")
    solid(tmp_path / "b" / "1.png", (16, 16))
    solid(tmp_path / "a" / "2.png", (16, 16))
    result = run_cli("stages.combine", "--a-dir", str(tmp_path / "a"), "--b-dir", str(tmp_path / "b"), "-o", str(tmp_path / "ab"))
    assert_user_error(result, str(tmp_path / "a" / "2.png"), f"no partner in {tmp_path / 'b'}", str(tmp_path / "b" / "2"))
    assert not (tmp_path / "ab").exists()


def test_missing_or_empty_input_folder(tmp_path, assert_user_error, run_cli):
    result = run_cli("stages.edges", "-i", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert_user_error(result, str(tmp_path / "nowhere"), "not a directory")
    (tmp_path / "empty").mkdir()
    result = run_cli("stages.edges", "-i", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert_user_error(result, "no images found")


def test_outputs_are_readable_by_the_group_like_any_new_folder(tmp_path):
    solid(tmp_path / "in" / "x.png", (8, 8))
    imageops.process_folder(imageops.grayscale, imageops.folder_jobs(tmp_path / "in"), tmp_path / "out", workers=1)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask  # not mkdtemp's private 0700
    assert stat.S_IMODE((tmp_path / "out" / "x.png").stat().st_mode) == 0o666 & ~umask
