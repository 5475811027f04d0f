"""Evaluation: three images per input, exact metrics, any image size, clean failures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pix2pix.color import lab_normalized_to_rgb, rgb_to_lab_normalized
from pix2pix.infer.evaluate import pad_to_multiple, run_generator, set_eval_mode
from pix2pix.infer.metrics import image_metrics
from pix2pix.nn.networks import UNetGenerator, init_weights


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, make_pairs, run_cli, tiny_args):
    root = tmp_path_factory.mktemp("eval")
    data = make_pairs(root / "pairs", count=3)
    run_cli("stages.train", "--input_dir", str(data), "--output_dir", str(root / "run"), *tiny_args, "--max_steps", "3", check=True)
    return root


def test_metrics_of_a_known_pair():
    output = np.full((16, 16, 3), 100, np.uint8)
    target = np.full((16, 16, 3), 110, np.uint8)
    metrics = image_metrics(output, target, colorization=True)
    assert metrics["l1"] == pytest.approx(10 / 255)
    assert metrics["psnr"] == pytest.approx(20 * math.log10(255 / 10))
    mu_x, mu_y, c1 = 100 / 255, 110 / 255, 0.01**2  # flat images: SSIM is the luminance term alone
    assert metrics["ssim"] == pytest.approx((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1))
    assert metrics["ciede2000"] > 0
    same = image_metrics(target, target, colorization=True)
    assert same == {"l1": 0.0, "psnr": 100.0, "ssim": 1.0, "ciede2000": 0.0}


def test_lab_matches_reference_values_and_round_trips():
    # sRGB red / green / blue / white under D65 (standard published values)
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    lab = rgb_to_lab_normalized(rgb)
    lightness = (lab[0, 0] + 1) * 50
    a, b = lab[1, 0] * 110, lab[2, 0] * 110
    expected = [(53.24, 80.09, 67.20), (87.73, -86.18, 83.18), (32.30, 79.19, -107.86), (100.0, 0.0, 0.0)]
    for i, (el, ea, eb) in enumerate(expected):
        assert (lightness[i], a[i], b[i]) == pytest.approx((el, ea, eb), abs=0.02)
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    lab = rgb_to_lab_normalized(photo)
    back = lab_normalized_to_rgb(lab[0], lab[1:])
    assert np.abs(back.astype(int) - photo).max() <= 1


def test_padding_keeps_any_size():
    generator = UNetGenerator(3, 3, depth=5, ngf=4).eval()
    for height, width in ((37, 53), (5, 90), (32, 32)):
        x = torch.rand(1, 3, height, width) * 2 - 1
        padded, size = pad_to_multiple(x, 32)
        assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0 and size == (height, width)
        assert torch.equal(padded[..., :height, :width], x)
        assert run_generator(generator, x).shape == x.shape


def test_train_mode_batches_keep_each_images_own_statistics():
    torch.manual_seed(0)
    generator = UNetGenerator(depth=5, ngf=8, dropout=0.0)
    init_weights(generator)
    generator.train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    keys = list(generator.state_dict())
    with torch.no_grad():
        alone = torch.cat([generator(image[None]) for image in x])  # plain batch norm, one image at a time
        pooled = generator(x)
        running = {k: v.clone() for k, v in generator.state_dict().items() if "running" in k}
        set_eval_mode(generator, "train")
        batched = generator(x)
    assert torch.allclose(batched, alone, atol=1e-5)
    assert not torch.allclose(pooled, alone, atol=1e-3)  # plain batch norm would mix the images
    state = generator.state_dict()
    assert list(state) == keys and all(torch.equal(state[k], v) for k, v in running.items())
    generator.eval()  # eval mode is still plain batch norm with the running statistics
    with torch.no_grad():
        assert torch.allclose(generator(x[:1]), generator(x)[:1], atol=1e-5)


def test_evaluate_writes_three_images_and_consistent_metrics(trained_run, tmp_path, make_pairs, run_cli):
    data = make_pairs(tmp_path / "val", count=2, size=32)
    odd = Image.fromarray(np.random.default_rng(1).integers(0, 256, (45, 77, 3), dtype=np.uint8))
    odd.save(data / "odd.jpg")  # non-square, width not even, not a multiple of 32
    out = tmp_path / "results"
    result = run_cli("stages.cli", "test", "--input_dir", str(data), "--checkpoint", str(trained_run / "run"), "--output_dir", str(out))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(f"{n}-{s}.png" for n in ("0", "1", "odd") for s in ("inputs", "outputs", "targets"))
    assert Image.open(out / "images" / "odd-outputs.png").size == (38, 45)
    table = pd.read_csv(out / "metrics.csv")
    assert list(table.columns) == ["name", "l1", "psnr", "ssim"] and len(table) == 3
    for row in table.itertuples():
        output = np.asarray(Image.open(out / "images" / f"{row.name}-outputs.png"))
        target = np.asarray(Image.open(out / "images" / f"{row.name}-targets.png"))
        recomputed = image_metrics(output, target)
        assert row.l1 == pytest.approx(recomputed["l1"], abs=1e-6)
        assert row.ssim == pytest.approx(recomputed["ssim"], abs=1e-6)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["count"] == 3 and summary["l1"] == pytest.approx(table["l1"].mean())


def test_evaluate_is_deterministic_and_eval_mode_differs(trained_run, tmp_path, make_pairs, run_cli):
    data = make_pairs(tmp_path / "val", count=1)
    outs = {}
    for name, mode in (("a", "train"), ("b", "train"), ("c", "eval")):
        run_cli("stages.evaluate", "-i", str(data), "-c", str(trained_run / "run"), "-o", str(tmp_path / name), "--eval_mode", mode, check=True)
        outs[name] = np.asarray(Image.open(tmp_path / name / "images" / "0-outputs.png"))
    assert np.array_equal(outs["a"], outs["b"])
    assert not np.array_equal(outs["a"], outs["c"])


def test_colorization_evaluation_reports_colour_error(tmp_path, make_photos, run_cli, tiny_args):
    photos = make_photos(tmp_path / "photos", count=2)
    run_cli("stages.train", "--lab_colorization", "-i", str(photos), "-o", str(tmp_path / "run"), *tiny_args, "--max_steps", "2", check=True)
    out = tmp_path / "res"
    run_cli("stages.evaluate", "-i", str(photos), "-c", str(tmp_path / "run"), "-o", str(out), check=True)
    table = pd.read_csv(out / "metrics.csv")
    assert "ciede2000" in table.columns and (table["ciede2000"] > 0).all()
    gray = np.asarray(Image.open(out / "images" / "photo0-inputs.png")).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1  # the input is the L channel alone


@pytest.mark.parametrize("bad", ["corrupt", "foreign", "missing_ckpt", "not_image", "empty"])
def test_bad_evaluation_input_is_one_line_exit_2(trained_run, tmp_path, bad, assert_user_error, make_pairs, run_cli):
    data = make_pairs(tmp_path / "val", count=1)
    checkpoint = trained_run / "run"
    if bad == "corrupt":
        checkpoint = tmp_path / "broken.pt"
        checkpoint.write_bytes((trained_run / "run" / "generator.pt").read_bytes()[:5000])
    elif bad == "foreign":
        checkpoint = tmp_path / "foreign.pt"
        torch.save({"state_dict": {"w": torch.zeros(2)}}, checkpoint)
    elif bad == "missing_ckpt":
        checkpoint = tmp_path / "nothing-here"
    elif bad == "not_image":
        (data / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif bad == "empty":
        for path in data.iterdir():
            path.unlink()
    out = tmp_path / "results"
    result = run_cli("stages.evaluate", "--input_dir", str(data), "--checkpoint", str(checkpoint), "--output_dir", str(out))
    fragment = {"corrupt": "broken.pt", "foreign": "foreign.pt", "missing_ckpt": "nothing-here", "not_image": "z.png", "empty": "no images"}[bad]
    assert_user_error(result, fragment)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results")], "staging folder left behind"
