"""Translate: images without targets, any size, tiled when large, full-resolution colorization, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pix2pix.color import rgb_to_lab_normalized
from pix2pix.data.images import list_images, read_rgb
from pix2pix.infer.evaluate import run_generator
from pix2pix.infer.translate import (
    Translator,
    feather,
    run_tiled,
    tile_starts,
    translate_files,
)
from pix2pix.task import to_uint8
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages.translate import app


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_pairs, make_photos, tiny_config):
    """Two tiny trained runs: RGB BtoA, and Lab colorization."""
    root = tmp_path_factory.mktemp("translate")
    train(TrainConfig(direction="BtoA", max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), root / "rgb")
    train(TrainConfig(lab_colorization=True, max_steps=2, **tiny_config), list_images(make_photos(root / "photos", count=2)), root / "color")
    return root


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_folder_of_any_sizes_gives_one_png_each_at_input_size(runs, tmp_path, invoke, run_cli):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(random_image(32, 32)).save(inputs / "square.png")
    Image.fromarray(random_image(45, 77, 1)).save(inputs / "odd.jpg")  # not a multiple of 32, odd width
    Image.fromarray(random_image(20, 9, 2)[..., 0]).save(inputs / "gray.png")
    Image.fromarray(np.dstack([random_image(40, 50, 3), np.full((40, 50), 128, np.uint8)])).save(inputs / "alpha.png")
    out = tmp_path / "out"
    result = run_cli("stages.cli", "translate", "-c", str(runs / "rgb"), "--input", str(inputs), "--output_dir", str(out), "--eval_mode", "eval")
    assert result.returncode == 0, result.stderr
    sizes = {path.name: Image.open(path).size for path in out.glob("*.png")}
    assert sizes == {"square.png": (32, 32), "odd.png": (77, 45), "gray.png": (9, 20), "alpha.png": (50, 40)}
    # The same as padding, running and cropping by hand: direction and size came from the checkpoint.
    translator = Translator.from_checkpoint(runs / "rgb", eval_mode="eval")
    odd = read_rgb(inputs / "odd.jpg")
    with torch.inference_mode():
        expected = to_uint8(run_generator(translator.generator, translator.network_input(odd)[None])[0].numpy())
    assert np.abs(np.asarray(Image.open(out / "odd.png")).astype(int) - expected).max() <= 1
    single = invoke(app, "-c", str(runs / "rgb"), "-i", str(inputs / "square.png"), "-o", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [".pix2pix-output", "square.png"]


def test_batches_give_the_same_images_as_one_at_a_time(runs, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index, (height, width) in enumerate([(32, 32), (40, 24), (32, 32), (40, 24), (32, 32), (64, 96)]):
        Image.fromarray(random_image(height, width, index)).save(inputs / f"{index}.png")
    paths = list_images(inputs)
    outputs = {}
    for batch_size in (1, 2, 4):
        translator = Translator.from_checkpoint(runs / "rgb", eval_mode="eval", batch_size=batch_size)
        written = translate_files(translator, paths, tmp_path / f"b{batch_size}")
        outputs[batch_size] = [np.asarray(Image.open(path)).astype(int) for path in written]
    for batch_size in (2, 4):
        for single, batched in zip(outputs[1], outputs[batch_size]):
            assert np.abs(single - batched).max() <= 1


def test_train_mode_is_reproducible_and_differs_from_eval_mode(runs, tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(random_image(32, 32)).save(image)
    outputs = []
    for name, mode in (("a", "train"), ("b", "train"), ("c", "eval")):
        translator = Translator.from_checkpoint(runs / "rgb", eval_mode=mode)
        outputs.append(np.asarray(Image.open(translate_files(translator, [image], tmp_path / name)[0])))
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])


def test_tile_layout_covers_everything_with_the_overlap():
    assert tile_starts(20, 32, 8) == [0]
    for length, tile, overlap in ((100, 32, 8), (65, 32, 16), (1000, 256, 64)):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == length
        assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    weights = feather(32, 8, ramp_start=True, ramp_end=False)
    assert weights[0] == pytest.approx(1 / 16) and weights[7] == pytest.approx(15 / 16) and (weights[8:] == 1).all()


class Pointwise(nn.Module):
    """A per-pixel "generator": blending its tiles must give exactly the untiled result."""

    depth = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * 0.7 + 0.1)


def test_tiles_blend_without_seams():
    x = torch.rand(2, 3, 70, 90) * 2 - 1
    whole = Pointwise()(x)
    assert torch.allclose(run_tiled(Pointwise(), x, tile=32, overlap=8, batch_size=5), whole, atol=1e-6)
    assert torch.equal(run_tiled(Pointwise(), x, tile=128, overlap=8, batch_size=1), whole)


def test_large_images_are_tiled_and_keep_their_size(runs, tmp_path):
    image = tmp_path / "wide.png"
    Image.fromarray(random_image(50, 130)).save(image)
    shapes = []
    translator = Translator.from_checkpoint(runs / "rgb", eval_mode="eval", max_side=32, overlap=8, batch_size=3)
    translator.generator.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    (output,) = translate_files(translator, [image], tmp_path / "out")
    assert Image.open(output).size == (130, 50)
    assert shapes and all(shape[0] <= 3 and shape[2:] == (32, 32) for shape in shapes)
    assert sum(shape[0] for shape in shapes) == len(tile_starts(50, 32, 8)) * len(tile_starts(130, 32, 8))


def test_colorization_predicts_small_and_keeps_full_resolution_lightness(runs, tmp_path, invoke):
    photo = tmp_path / "photo.png"
    from skimage import data

    Image.fromarray(data.astronaut()[:180, :120]).save(photo)
    out = tmp_path / "out"
    result = invoke(app, "-c", str(runs / "color"), "-i", str(photo), "-o", str(out))  # no task flags
    assert result.returncode == 0, result.stderr
    colorized = np.asarray(Image.open(out / "photo.png"))
    assert colorized.shape == (180, 120, 3)
    lightness_in = rgb_to_lab_normalized(read_rgb(photo))[0]
    lightness_out = rgb_to_lab_normalized(colorized)[0]
    assert np.abs(lightness_in - lightness_out).mean() * 50 < 1.0  # the input's own L, at full resolution
    seen = []
    translator = Translator.from_checkpoint(runs / "color", eval_mode="eval")
    translator.generator.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    translate_files(translator, [photo], tmp_path / "again")
    assert seen == [(1, 1, 32, 32)]  # L shrunk to 32x21 (the crop size), padded to the U-Net's multiple


def damage_not_image(folder):
    (folder / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return [], "z.png"


def damage_same_name(folder):
    Image.fromarray(random_image(8, 8)).save(folder / "a.jpg")
    Image.fromarray(random_image(8, 8)).save(folder / "a.png")
    return [], "would both be written"


def damage_output_is_input(folder):
    Image.fromarray(random_image(8, 8)).save(folder / "a.png")
    return ["--output_dir", str(folder)], "would overwrite an input image"


def damage_missing_input(folder):
    return ["--input", str(folder / "nothing")], "nothing: no such image or folder"


def damage_overlap(folder):
    Image.fromarray(random_image(8, 8)).save(folder / "a.png")
    return ["--max_side", "32", "--overlap", "20"], "overlap 20"


@pytest.mark.parametrize("damage", [damage_not_image, damage_same_name, damage_output_is_input, damage_missing_input, damage_overlap])
def test_bad_input_is_one_error_line(runs, tmp_path, damage, assert_user_error, invoke):
    folder = tmp_path / "in"
    folder.mkdir()
    extra, fragment = damage(folder)
    result = invoke(app, "-c", str(runs / "rgb"), "-i", str(folder), "-o", str(tmp_path / "out"), *extra)
    assert_user_error(result, fragment)
