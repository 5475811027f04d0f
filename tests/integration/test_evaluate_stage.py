"""The `evaluate` stage on runs `train` made: three images per input, exact metrics, any image size, clean failures.

The evaluation functions in-process: tests/unit/test_evaluate.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pix2pix.infer.metrics import image_metrics


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, make_pairs, run_cli, tiny_args):
    root = tmp_path_factory.mktemp("eval")
    data = make_pairs(root / "pairs", count=3)
    run_cli("stages.train", "--input_dir", str(data), "--output_dir", str(root / "run"), *tiny_args, "--max_steps", "3", check=True)
    return root


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
