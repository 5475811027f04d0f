"""Colour hints (issue 19, items 3 and 5): simulated hints, a hint model's training, resumption and checkpoint,
translate --hints (where hints land, bad hint files), evaluate's hint curve, export and the report's plot."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.data.dataset import TrainingSet
from pix2pix.data.hints import (
    CURVE_COUNTS,
    MAX_SIZE,
    Hint,
    hint_channels,
    simulate_hints,
)
from pix2pix.data.images import list_images, read_rgb
from pix2pix.errors import UserError
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.export import export_generator
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.infer.translate import Translator, translate_files
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.loop import Callbacks, TrainingInterrupted
from pix2pix.train.pix2pix_model import train
from stages.tracking import evaluation_metrics
from stages.translate import app as translate_app
from tests.support.hints import HINTED, ShowsHints


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_photos, tiny_config):
    """Photos, a tiny hint model and a tiny colorization model without hints."""
    root = tmp_path_factory.mktemp("hints")
    photos = list_images(make_photos(root / "photos", count=3))
    train(TrainConfig(lab_colorization=True, hints=True, max_steps=3, **tiny_config), photos, root / "hinted")
    train(TrainConfig(lab_colorization=True, max_steps=1, **tiny_config), photos, root / "plain")
    return root


def squares(mask: torch.Tensor) -> tuple[int, int]:
    """(height, width) of the box around a mask's ones."""
    rows, columns = torch.nonzero(mask, as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(columns.max() - columns.min() + 1)


def test_simulated_hints_are_seeded_squares_of_1_to_9_px_showing_the_mean_ab_and_sometimes_none():
    ab = torch.rand(2, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    one = [simulate_hints(ab, torch.Generator().manual_seed(seed), count=1) for seed in range(60)]
    for hints in one:
        height, width = squares(hints[2])
        assert height == width and 1 <= height <= MAX_SIZE and hints[2].sum() == height * width
        inside = hints[2] == 1
        assert torch.allclose(hints[:2, inside], ab[:, inside].mean(dim=1, keepdim=True).expand(-1, int(inside.sum())))
        assert (hints[:2, ~inside] == 0).all()
    assert {squares(hints[2])[0] for hints in one} == set(range(1, MAX_SIZE + 1))
    # the paper's random number: deterministic per seed, none now and then, several on average
    drawn = [simulate_hints(ab, torch.Generator().manual_seed(seed)) for seed in range(200)]
    assert all(torch.equal(hints, simulate_hints(ab, torch.Generator().manual_seed(seed))) for seed, hints in enumerate(drawn[:20]))
    empty = sum(not hints[2].any() for hints in drawn)
    assert 5 <= empty <= 50 and empty < len(drawn)
    # a fixed count: more hints add to fewer (the first ones are the same)
    few, more = (simulate_hints(ab, torch.Generator().manual_seed(7), count=count) for count in (2, 5))
    assert (more[2] >= few[2]).all() and more[2].sum() > few[2].sum()


def test_a_hint_model_takes_l_and_hints_and_its_checkpoint_says_so(runs, make_photos, tiny_config):
    payload = ckpt.load(runs / "hinted" / ckpt.GENERATOR_NAME)
    assert payload["config"]["hints"] is True and payload["architecture"]["hints"] is True
    generator, config = generator_from_checkpoint(runs / "hinted")
    assert Task.of(config) == HINTED and generator.encoder[0][0].in_channels == 4
    dataset = TrainingSet(list_images(runs / "photos"), HINTED, 36, 32)
    plan = dataset.epoch_plan(seed=0, epoch=0)
    inputs, targets = dataset.batch(plan, 0, 3)
    assert inputs.shape == (3, 4, 32, 32) and torch.equal(inputs, dataset.batch(dataset.epoch_plan(seed=0, epoch=0), 0, 3)[0])
    assert inputs[:, 3].any() and not torch.equal(inputs, dataset.batch(dataset.epoch_plan(seed=0, epoch=1), 0, 3)[0])
    for position, (network_input, target) in enumerate(zip(inputs, targets)):  # from this very crop's target, by the plan's seed
        expected = simulate_hints(target, torch.Generator().manual_seed(int(plan.hint_seeds[position])))
        assert torch.equal(network_input[1:], expected)
    with pytest.raises(ValueError, match="hints need lab_colorization"):
        TrainConfig(hints=True, **tiny_config)


def test_hint_model_resumed_equals_uninterrupted(tmp_path, runs, tiny_config):
    """Stopped in the middle of the second epoch (3 steps an epoch), the run draws the same hints on resuming."""
    config = TrainConfig(lab_colorization=True, hints=True, max_steps=6, save_freq=100, **tiny_config)
    photos = list_images(runs / "photos")
    train(config, photos, tmp_path / "whole")
    interrupt = Callbacks(on_step=lambda report: os.kill(os.getpid(), signal.SIGTERM) if report.step == 3 else None)
    with pytest.raises(TrainingInterrupted):
        train(config, photos, tmp_path / "split", interrupt)
    assert ckpt.load(tmp_path / "split" / ckpt.CHECKPOINT_NAME)["batch_index"] == 1
    train(config, photos, tmp_path / "split")
    whole, split = (ckpt.load(tmp_path / run / ckpt.GENERATOR_NAME)["generator"] for run in ("whole", "split"))
    assert all(torch.equal(whole[key], split[key]) for key in whole)


def test_a_hint_lands_where_it_was_put_at_any_input_size_tiles_included():
    """A 200x120 grey image shrunk to the network's 40x24 frame and run in 16 px tiles: the red hint comes back
    at full resolution where it was put, and nowhere far from it."""
    image = np.full((120, 200, 3), 128, np.uint8)
    translator = Translator(ShowsHints(), HINTED, color_side=40, max_side=16, overlap=4)
    hint = Hint(150, 30, (255, 0, 0), 20)
    output = translator.translate([image], [[hint]])[0].astype(int)
    assert output.shape == image.shape
    red = output[..., 0] - output[..., 1]
    assert red[30, 150] > 60 and red[25:36, 145:156].min() > 40
    assert np.abs(red[90:, :100]).max() <= 2 and np.abs(red[:, :120]).max() <= 2
    # the hint image itself: the square's centre in the network's frame, its size scaled with the image
    channels = hint_channels([hint], (120, 200), (24, 40))
    assert squares(channels[2]) == (4, 4) and channels[2, 6, 30] == 1
    assert channels[0, 6, 30] > 0.5 and channels[0][channels[2] == 0].abs().max() == 0
    with pytest.raises(UserError, match="takes no colour hints"):
        Translator(ShowsHints(), Task("AtoB", lab_colorization=True)).translate([image], [[hint]])


def test_translate_hints_file_for_an_image_and_a_folder(runs, tmp_path, invoke):
    image = runs / "photos" / "photo0.png"
    hints_file = tmp_path / "hints.json"
    hints_file.write_text(json.dumps([{"x": 39, "y": 0, "color": "#00ff00", "size": 3}]))
    result = invoke(translate_app, "-c", str(runs / "hinted"), "-i", str(image), "--hints", str(hints_file), "-o", str(tmp_path / "one"))
    assert result.returncode == 0, result.stderr
    hinted = read_rgb(tmp_path / "one" / "photo0.png")
    alone = translate_files(Translator.from_checkpoint(runs / "hinted"), [image], tmp_path / "alone")[0]
    assert hinted.shape == (40, 40, 3) and not np.array_equal(hinted, read_rgb(alone))
    hints_file.write_text(json.dumps({"photo2.png": [{"x": 5, "y": 6, "color": "#123ABC"}]}))
    result = invoke(translate_app, "-c", str(runs / "hinted"), "-i", str(runs / "photos"), "--hints", str(hints_file), "-o", str(tmp_path / "all"))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "all").glob("*.png")) == ["photo0.png", "photo1.png", "photo2.png"]


BAD_HINTS = {
    "not JSON": ("[{", "image", "not a readable JSON hints file"),
    "an object for one image": ({"x": 1}, "image", "expected a list of hints"),
    "a list for a folder": ([], "folder", "expected an object mapping file names"),
    "a number for a hint": ([3], "image", "hint 1: expected an object"),
    "no colour": ([{"x": 1, "y": 2}], "image", "'color' must be \"#rrggbb\""),
    "a colour name": ([{"x": 1, "y": 2, "color": "red"}], "image", "'color' must be"),
    "a short colour": ([{"x": 1, "y": 2, "color": "#ff0"}], "image", "'color' must be"),
    "a negative y": ([{"x": 1, "y": -2, "color": "#ff0000"}], "image", "'y' must be a whole number >= 0"),
    "a fractional x": ([{"x": 1.5, "y": 2, "color": "#ff0000"}], "image", "'x' must be a whole number"),
    "size 0": ([{"x": 1, "y": 2, "color": "#ff0000", "size": 0}], "image", "'size' must be a whole number >= 1"),
    "a misspelt key": ([{"x": 1, "y": 2, "colour": "#ff0000"}], "image", "unknown key 'colour'"),
    "x outside the image": ([{"x": 40, "y": 2, "color": "#ff0000"}], "image", "hint 1 at x 40, y 2 is outside the 40x40 image"),
    "an unknown file name": ({"photo9.png": []}, "folder", "'photo9.png' is not one of the input images"),
    "a bad hint of one file": ({"photo1.png": [{"x": 1}]}, "folder", "photo1.png: hint 1: 'y' must be"),
    "a model without hints": ([{"x": 1, "y": 2, "color": "#ff0000"}], "plain", "takes no colour hints"),
}


@pytest.mark.parametrize("case", BAD_HINTS)
def test_a_bad_hints_file_is_one_line_naming_it_and_nothing_is_written(runs, tmp_path, invoke, assert_user_error, case):
    content, target, message = BAD_HINTS[case]
    hints_file = tmp_path / "hints.json"
    hints_file.write_text(content if isinstance(content, str) else json.dumps(content))
    run = runs / ("plain" if target == "plain" else "hinted")
    source = runs / "photos" if target == "folder" else runs / "photos" / "photo0.png"
    result = invoke(translate_app, "-c", str(run), "-i", str(source), "--hints", str(hints_file), "-o", str(tmp_path / "out"))
    assert_user_error(result, str(hints_file), message)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


def test_evaluate_writes_the_hint_curve(runs, tmp_path):
    generator, config = generator_from_checkpoint(runs / "hinted")
    paths = list_images(runs / "photos")
    summary = evaluate(generator, Task.of(config), paths, tmp_path / "eval", eval_mode="eval", batch_size=2)
    curve = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["hint_curve"]
    assert curve == summary["hint_curve"] and curve["counts"] == list(CURVE_COUNTS)
    assert curve["directions"] == {"psnr": "higher", "ciede2000": "lower"}
    assert curve["psnr"][0] == summary["psnr"] and curve["ciede2000"][0] == summary["ciede2000"]  # 0 hints: the model alone
    assert len(set(curve["ciede2000"])) > 1 and all(len(curve[metric]) == len(CURVE_COUNTS) for metric in ("psnr", "ciede2000"))
    assert "grey" in summary["baselines"] and {"l1", "psnr", "ssim", "ciede2000", "count"} <= set(summary)
    logged = evaluation_metrics(summary)  # what evaluate logs to the training's MLflow run
    assert logged["eval_hints_10_ciede2000"] == curve["ciede2000"][4] and logged["eval_hints_50_psnr"] == curve["psnr"][6]
    # the same hints whatever the batching
    again = evaluate(generator, Task.of(config), paths, tmp_path / "again", eval_mode="eval", batch_size=1)
    assert np.allclose(again["hint_curve"]["ciede2000"], curve["ciede2000"], rtol=1e-3)
    plain, _ = generator_from_checkpoint(runs / "plain")
    assert "hint_curve" not in evaluate(plain, Task("AtoB", lab_colorization=True), paths[:1], tmp_path / "plain")


def test_export_takes_the_hint_channels_as_inputs(runs, tmp_path):
    generator, config = generator_from_checkpoint(runs / "hinted")
    metadata = export_generator(generator, config, tmp_path / "g.ts", "torchscript")
    assert metadata["input"].startswith("float32 (N, 4, H, W)") and "mask" in metadata["input"] and metadata["hints"] == "true"
    exported = torch.jit.load(str(tmp_path / "g.ts"))
    assert exported(torch.zeros(1, 4, 32, 32)).shape == (1, 2, 32, 32)


def test_report_plots_the_hint_curve(runs, tmp_path):
    from pix2pix.apps.report import build_report

    generator, config = generator_from_checkpoint(runs / "hinted")
    evaluate(generator, Task.of(config), list_images(runs / "photos"), tmp_path / "eval")
    build_report("colorization", tmp_path / "eval", runs / "hinted", tmp_path / "report")
    assert Image.open(tmp_path / "report" / "hint_curve.png").size[0] > 300
    assert 'src="hint_curve.png"' in (tmp_path / "report" / "index.html").read_text()
    context = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    (tmp_path / "eval" / "evaluation.json").write_text(json.dumps({**context, "hint_curve": {"counts": [0, 1], "psnr": [1.0]}}))
    with pytest.raises(UserError, match="'hint_curve' must hold"):
        build_report("colorization", tmp_path / "eval", runs / "hinted", tmp_path / "report2")
