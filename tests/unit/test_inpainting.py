"""Inpainting keeps what it was given: the hole is the input's pure white, the answer is the input
outside it and the network's output inside, in training, evaluation, translation and export."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.apps.report import build_report
from pix2pix.data.dataset import TrainingSet
from pix2pix.data.images import list_images, read_rgb
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.export import export_generator
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.infer.translate import Translator
from pix2pix.prep.imageops import blank, combine
from pix2pix.task import Task, to_unit_range
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import Pix2Pix, train

INPAINT = Task("BtoA", inpaint=True)


def smooth_photo(size: int, seed: int) -> np.ndarray:
    """A smooth colour image with no pure-white pixel: the only white is the hole that blank paints."""
    base = np.random.default_rng(seed).integers(0, 250, (size // 4, size // 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR))


def make_inpainting_pairs(folder, count: int = 3, size: int = 32):
    """A|B files as the pipeline makes them: A the photo, B the photo blanked by ``pix2pix blank``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        photo = Image.fromarray(smooth_photo(size, index))
        combine(photo, blank(photo)).save(folder / f"{index}.png")
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_inpainting_pairs(tmp_path_factory.mktemp("inpainting") / "pairs")


@pytest.fixture(scope="module")
def run(pairs, tiny_config):
    """A tiny inpainting model, trained a few steps."""
    output = pairs.parent / "run"
    train(TrainConfig(direction="BtoA", inpaint=True, max_steps=3, **tiny_config), list_images(pairs), output)
    return output


def blanked_half(path) -> np.ndarray:
    """The B half (the blanked photo, the network input of a BtoA model) of an A|B file."""
    pixels = read_rgb(path)
    return pixels[:, pixels.shape[1] // 2 :]


def test_hole_is_exactly_the_white_square():
    photo = smooth_photo(32, 0).copy()
    photo[0, 0] = (255, 255, 254)  # nearly white is given, not hole
    blanked = np.asarray(blank(Image.fromarray(photo)))
    hole = INPAINT.hole_mask(to_unit_range(blanked))[0].numpy()
    side, offset = int(0.3 * 32), int(32 / 2 - int(0.3 * 32) / 2)
    expected = np.zeros((32, 32), bool)
    expected[offset : offset + side, offset : offset + side] = True
    np.testing.assert_array_equal(hole, expected)


@pytest.mark.parametrize("load_size", [36, 45, 24])
def test_hole_survives_the_training_resize_and_crop(pairs, load_size):
    """The cached inputs are resized so the hole stays one sharp white rectangle, and the given pixels
    around it are the target's own (bicubic alone would leave a whitish rim the target lacks)."""
    dataset = TrainingSet(list_images(pairs), INPAINT, load_size, min(load_size, 24))
    plain = TrainingSet(list_images(pairs), Task("BtoA"), load_size, min(load_size, 24))
    for epoch in range(3):
        plan = dataset.epoch_plan(0, epoch)
        for index in range(len(dataset)):
            inputs, targets = dataset.batch(plan, index, 1)
            hole = INPAINT.hole_mask(inputs)[0, 0]
            rows, columns = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
            assert len(rows) and hole[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1].all()
            torch.testing.assert_close(inputs[:, :, ~hole], targets[:, :, ~hole], rtol=0, atol=0)
            plain_inputs, plain_targets = plain.batch(plan, index, 1)
            plain_given = ~INPAINT.hole_mask(plain_inputs)[0, 0]
            if load_size != 24:  # resized: bicubic alone blurs the square into the given pixels
                assert not torch.equal(plain_inputs[:, :, plain_given], plain_targets[:, :, plain_given])


def test_composite_keeps_given_pixels_bit_exact():
    inputs = to_unit_range(np.asarray(blank(Image.fromarray(smooth_photo(32, 1)))))[None]
    outputs = torch.rand(1, 3, 32, 32, dtype=torch.float16) * 2 - 1
    hole = INPAINT.hole_mask(inputs).expand_as(inputs)
    answer = INPAINT.composite(inputs, outputs)
    assert answer.dtype == torch.float32 and hole.any() and not hole.all()
    assert torch.equal(answer[~hole], inputs[~hole]) and torch.equal(answer[hole], outputs.float()[hole])
    assert Task("BtoA").composite(inputs, outputs) is outputs


def test_training_step_composites_before_the_discriminator_and_weights_the_hole(pairs, tiny_config, training_batches):
    """The discriminator's fakes hold the given pixels; the L1 term is the hole's alone, times hole_weight."""
    losses, seen = {}, []
    for hole_weight in (0.0, 1.0, 4.0):
        config = TrainConfig(direction="BtoA", inpaint=True, hole_weight=hole_weight, **tiny_config)
        inputs, targets = training_batches(pairs, config, batch_size=2)[0]
        torch.manual_seed(0)
        model = Pix2Pix(config, torch.device("cpu"))
        seen.clear()
        hook = model.discriminator.register_forward_hook(lambda module, args, output: seen.append(args))
        losses[hole_weight] = float(model.train_step(inputs, targets)["G_L1"])
        hook.remove()
        given = ~INPAINT.hole_mask(inputs).expand_as(inputs)
        _, fake = seen[0]  # the D step's (input, fake)
        assert torch.equal(fake[given], inputs[given]) and not torch.equal(fake, inputs)
    assert losses[0.0] == 0.0  # the given pixels are the target's, so they cost nothing
    assert losses[1.0] > 0 and losses[4.0] == pytest.approx(4 * losses[1.0], rel=1e-5)


def test_translate_keeps_given_pixels_whole_and_tiled(run, pairs):
    image = blanked_half(pairs / "0.png")
    large = np.asarray(blank(Image.fromarray(smooth_photo(96, 7))))[:, :80]  # 96x80: several tiles of 32
    for translator, picture in ((Translator.from_checkpoint(run), image), (Translator.from_checkpoint(run, max_side=32, overlap=8), large)):
        assert translator.task.inpaint
        output = translator.translate([picture])[0]
        hole = (picture == 255).all(axis=2)
        np.testing.assert_array_equal(output[~hole], picture[~hole])
        assert (output[hole] != 255).any()  # the network filled the hole


def test_evaluate_scores_the_hole_beside_the_whole_image(run, pairs, tmp_path):
    generator, config = generator_from_checkpoint(run)
    summary = evaluate(generator, Task.of(config), list_images(pairs), tmp_path / "eval")
    saved = {**json.loads((tmp_path / "eval" / "metrics.json").read_text()), **json.loads((tmp_path / "eval" / "evaluation.json").read_text())}
    assert saved["directions"]["hole_l1"] == "lower" and saved["directions"]["hole_psnr"] == "higher"
    assert {"l1", "psnr", "ssim", "hole_l1", "hole_psnr"} <= set(saved["baselines"]["identity"])
    squares = []
    for path in list_images(pairs):
        given = blanked_half(path)
        target = read_rgb(path)[:, : given.shape[1]]
        output = read_rgb(tmp_path / "eval" / "images" / f"{path.stem}-outputs.png")
        hole = (given == 255).all(axis=2)
        np.testing.assert_array_equal(output[~hole], given[~hole])
        squares.append(np.abs(255 - target[hole].astype(float)).mean() / 255)
    # identity's hole is the white square; whole-image scores average over 4x as many pixels
    assert saved["baselines"]["identity"]["hole_l1"] == pytest.approx(np.mean(squares))
    assert saved["hole_l1"] > saved["l1"] and summary == saved
    build_report("inpainting", tmp_path / "eval", run, tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text()
    assert "hole_l1" in page and "hole_psnr" in page


def test_models_that_do_not_inpaint_score_no_hole(tmp_path, tiny_config):
    pairs = make_inpainting_pairs(tmp_path / "pairs", count=2)
    train(TrainConfig(direction="BtoA", max_steps=1, **tiny_config), list_images(pairs), tmp_path / "run")
    generator, config = generator_from_checkpoint(tmp_path / "run")
    summary = evaluate(generator, Task.of(config), list_images(pairs), tmp_path / "eval")
    assert "hole_l1" not in summary and "hole_l1" not in summary["baselines"]["identity"]


def test_a_checkpoint_saved_before_inpainting_loads_and_resumes(tmp_path, pairs, tiny_config):
    config = TrainConfig(direction="BtoA", max_steps=1, **tiny_config)
    train(config, list_images(pairs), tmp_path / "run")
    path = tmp_path / "run" / ckpt.CHECKPOINT_NAME
    payload = ckpt.load(path)
    for key in ("inpaint", "hole_weight"):
        del payload["config"][key]
    ckpt.save(payload, path)
    assert not Translator.from_checkpoint(path).task.inpaint
    assert train(config.model_copy(update={"max_steps": 2}), list_images(pairs), tmp_path / "run")["steps"] == 2


def test_exported_graph_composites(run, tmp_path):
    generator, config = generator_from_checkpoint(run)
    metadata = export_generator(generator, config, tmp_path / "generator.onnx", "onnx", "eval")
    assert metadata["inpaint"] == "true"
    session = onnxruntime.InferenceSession(str(tmp_path / "generator.onnx"), providers=["CPUExecutionProvider"])
    inputs = to_unit_range(np.asarray(blank(Image.fromarray(smooth_photo(32, 2)))))[None]
    output = torch.from_numpy(session.run(["output"], {"input": inputs.numpy()})[0])
    hole = INPAINT.hole_mask(inputs).expand_as(inputs)
    generator.eval()
    with torch.no_grad():
        expected = generator(inputs)
    assert torch.equal(output[~hole], inputs[~hole])
    torch.testing.assert_close(output[hole], expected[hole], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--inpaint", "--lab-colorization"], ["inpaint and lab_colorization exclude each other"]),
        (["--inpaint", "--hole-weight", "-1"], ["--hole-weight", "greater than or equal to 0"]),
    ],
)
def test_bad_inpainting_options_are_one_line_errors(tmp_path, pairs, options, fragments, run_cli, assert_user_error):
    result = run_cli("stages.cli", "train", "-i", str(pairs), "-o", str(tmp_path / "run"), *options)
    assert_user_error(result, *fragments)
    assert not (tmp_path / "run").exists()
