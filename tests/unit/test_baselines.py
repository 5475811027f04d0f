"""Baselines everywhere: evaluate scores trivial outputs beside the model, and the reports judge a model by them alone.

Known answers on tiny synthetic data: the identity baseline of pairs whose input is their target
is perfect, so is the grey baseline of a grey photo, and the mean baseline of a target equal to
the training targets' mean.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from markupsafe import escape
from PIL import Image
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.apps.report import build_index, build_report, compare_with_baselines
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.infer.evaluate import evaluate, mean_target_image
from pix2pix.infer.summary import read_summary, write_summary
from pix2pix.nn.networks import build_generator
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from stages import evaluate as evaluate_stage
from stages import report as report_stage
from stages.tracking import evaluation_metrics

PERFECT = {"l1": 0.0, "psnr": 100.0, "ssim": 1.0}


class ConstantGenerator(nn.Module):
    """Outputs ``value`` everywhere, ``channels`` deep: a model that ignores its input."""

    depth = 0  # no U-Net levels: any size goes through unpadded

    def __init__(self, channels: int, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], self.channels, *x.shape[2:])


def write_pairs(folder: Path, halves: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    """A|B files from (A, B) uint8 arrays."""
    folder.mkdir(parents=True)
    for index, (a, b) in enumerate(halves):
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{index}.png")
    return folder


def flat(value: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def noise(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_identity_baseline_of_pairs_whose_input_is_the_target_is_perfect(tmp_path):
    pairs = write_pairs(tmp_path / "val", [(noise(seed), noise(seed)) for seed in range(3)])
    summary = evaluate(ConstantGenerator(3, 0.0), Task("AtoB"), list_images(pairs), tmp_path / "results")
    assert summary["baselines"] == {"identity": PERFECT}
    assert summary["directions"] == {"l1": "lower", "psnr": "higher", "ssim": "higher"}
    assert summary["l1"] > 0.1  # the grey model is far off: the baseline is scored apart from it


def test_identity_baseline_follows_the_direction(tmp_path):
    """BtoA: the input is B, so identity scores B against A, with the metric code the model gets."""
    pairs = write_pairs(tmp_path / "val", [(flat(100), flat(110))])
    summary = evaluate(ConstantGenerator(3, 0.0), Task("BtoA"), list_images(pairs), tmp_path / "results")
    assert summary["baselines"]["identity"]["l1"] == pytest.approx(10 / 255)


def test_grey_baseline_of_a_grey_photo_is_perfect(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(2):
        Image.fromarray(noise(seed)[..., :1].repeat(3, axis=2)).save(photos / f"{seed}.png")
    colouring = ConstantGenerator(2, 0.5)  # ab = 55 everywhere: an orange cast
    summary = evaluate(colouring, Task("AtoB", lab_colorization=True), list_images(photos), tmp_path / "results")
    assert summary["baselines"] == {"grey": {**PERFECT, "ciede2000": 0.0}}
    assert summary["directions"]["ciede2000"] == "lower" and summary["ciede2000"] > 10


def test_mean_baseline_is_the_pixelwise_mean_of_the_training_targets(tmp_path):
    train = write_pairs(tmp_path / "train", [(noise(0), flat(0)), (noise(1), flat(201))])
    mean = mean_target_image(list_images(train), Task("AtoB"))
    assert mean.shape == (32, 32, 3) and np.all(mean == 101)  # 100.5, rounded half up
    val = write_pairs(tmp_path / "val", [(noise(2, 16), flat(101, 16))])  # another size: the mean is resized to it
    summary = evaluate(ConstantGenerator(3, 0.0), Task("AtoB"), list_images(val), tmp_path / "results", mean_target=mean)
    assert summary["baselines"]["mean"] == PERFECT and summary["baselines"]["identity"]["l1"] > 0.1


def test_mean_of_targets_of_several_sizes_is_taken_at_the_eval_size(tmp_path):
    train = write_pairs(tmp_path / "train", [(noise(0), flat(40)), (noise(1, 48), flat(80, 48))])
    assert mean_target_image(list_images(train), Task("AtoB")).shape == (32, 32, 3)  # the first target's size
    resized = mean_target_image(list_images(train), Task("AtoB"), size=8)
    assert resized.shape == (8, 8, 3) and np.all(resized == 60)


def test_mlflow_gets_the_model_and_each_baseline_under_flat_names():
    summary = {"l1": 0.07, "ssim": 0.8, "count": 2, "eval_mode": "train", "directions": {"l1": "lower", "ssim": "higher"},
               "baselines": {"identity": {"l1": 0.05, "ssim": 0.9}, "mean": {"l1": 0.2, "ssim": 0.1}}}  # fmt: skip
    assert evaluation_metrics(summary) == {
        "eval_l1": 0.07, "eval_ssim": 0.8, "baseline_identity_l1": 0.05, "baseline_identity_ssim": 0.9,
        "baseline_mean_l1": 0.2, "baseline_mean_ssim": 0.1,
    }  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_config) -> Path:
    """A run folder holding an untrained tiny generator (generator.pt alone, no MLflow marker)."""
    config = TrainConfig(**tiny_config)
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    payload = {"config": config.model_dump(mode="json"), "architecture": config.architecture(), "generator": build_generator(config.architecture()).state_dict()}
    ckpt.save(payload, run / ckpt.GENERATOR_NAME)
    return run


def test_the_stage_keeps_its_keys_and_adds_the_mean_baseline_given_the_training_folder(tmp_path, tiny_run, make_pairs, invoke):
    val, train = make_pairs(tmp_path / "val", count=2), make_pairs(tmp_path / "train", count=3, seed=1)
    stage = (evaluate_stage.app, "-i", str(val), "-c", str(tiny_run))
    result = invoke(*stage, "-o", str(tmp_path / "with"), "--train_dir", str(train))
    assert result.returncode == 0, result.stderr
    assert "baseline identity: l1" in result.stdout and "baseline mean: l1" in result.stdout
    # metrics.json: the means alone, a `dvc metrics show` column each; evaluation.json: what they are read against
    assert list(json.loads((tmp_path / "with" / "metrics.json").read_text())) == ["l1", "psnr", "ssim", "count"]
    context = json.loads((tmp_path / "with" / "evaluation.json").read_text())
    assert list(context) == ["eval_mode", "directions", "baselines"]
    assert list(context["baselines"]) == ["identity", "mean"] and all(list(scores) == ["l1", "psnr", "ssim"] for scores in context["baselines"].values())
    assert (tmp_path / "with" / "metrics.csv").read_text().splitlines()[0] == "name,l1,psnr,ssim"
    assert invoke(*stage, "-o", str(tmp_path / "without")).returncode == 0
    assert list(json.loads((tmp_path / "without" / "evaluation.json").read_text())["baselines"]) == ["identity"]


def test_a_training_folder_without_images_is_refused_before_anything_is_written(tmp_path, tiny_run, make_pairs, invoke, assert_user_error):
    (tmp_path / "empty").mkdir()
    result = invoke(evaluate_stage.app, "-i", str(make_pairs(tmp_path / "val", count=1)), "-c", str(tiny_run), "-o", str(tmp_path / "out"), "--train_dir", str(tmp_path / "empty"))
    assert_user_error(result, str(tmp_path / "empty"), "no images")
    assert not (tmp_path / "out").exists()


INPAINTING = {
    "l1": 0.0712, "psnr": 21.0, "ssim": 0.70, "count": 1, "eval_mode": "train",
    "directions": {"l1": "lower", "psnr": "higher", "ssim": "higher"},
    "baselines": {"identity": {"l1": 0.0495, "psnr": 23.0, "ssim": 0.65}, "mean": {"l1": 0.20, "psnr": 12.0, "ssim": 0.10}},
}  # fmt: skip
COLORIZATION = {
    "l1": 0.05, "psnr": 24.0, "ssim": 0.759, "ciede2000": 9.0, "count": 1, "eval_mode": "train",
    "directions": {"l1": "lower", "psnr": "higher", "ssim": "higher", "ciede2000": "lower"},
    "baselines": {"grey": {"l1": 0.06, "psnr": 23.0, "ssim": 0.863, "ciede2000": 10.0}},
}  # fmt: skip


def test_a_tie_is_no_win_and_a_metric_without_direction_is_not_judged():
    summary = {"l1": 0.1, "fid": 30.0, "count": 4, "directions": {"l1": "lower"}, "baselines": {"identity": {"l1": 0.1, "fid": 40.0}}}
    comparison = compare_with_baselines(summary, Path("metrics.json"))
    assert comparison.verdicts == {"identity": (0, 1)}
    assert [(row["name"], row["better"], row["baselines"]["identity"]["beats"]) for row in comparison.metrics] == [
        ("l1", "↓ lower is better", False), ("fid", "", None),
    ]  # fmt: skip


@pytest.mark.parametrize("layout", ["two files", "one file of an older evaluate"])
def test_report_shows_each_metric_with_its_direction_beside_its_baselines(tmp_path, make_results, layout):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    if layout == "two files":
        write_summary(eval_dir, INPAINTING)
    else:
        (eval_dir / "metrics.json").write_text(json.dumps(INPAINTING))
    build_report("inpainting", eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert "beats identity on 1 of 3 metrics" in html and "beats mean on 3 of 3 metrics" in html
    row = re.search(r"<tr><td>l1</td>.*?</tr>", html.split("Against baselines")[1], re.DOTALL).group(0)
    assert "↓ lower is better" in row and "0.0495 · model does not beat it" in row and "0.2000 · model beats it" in row
    assert html.count("↑ higher is better") >= 4  # psnr and ssim: on their cards, in the summary and the baselines table
    assert read_summary(tmp_path / "report") == INPAINTING  # the index reads the copy, written as evaluate writes it now
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == {"l1": 0.0712, "psnr": 21.0, "ssim": 0.70, "count": 1}


def test_index_sets_each_experiment_against_its_own_baselines_only(tmp_path, hostile):
    experiments = [("inpainting", "inpainting", INPAINTING), (hostile.title, "colorization", COLORIZATION)]
    build_index(experiments, tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text()
    assert "best" not in html.lower() and str(escape(hostile.title)) in html and "<script" not in html
    overview = re.search(r'<table id="experiments">.*?</table>', html, re.DOTALL).group(0)
    assert re.findall(r"<th[^>]*>([^<]+)</th>", overview) == ["experiment", "against its own baselines", "images", "eval mode"]
    assert "beats identity on 1 of 3 metrics · beats mean on 3 of 3 metrics" in overview
    assert "beats grey on 3 of 4 metrics" in overview  # SSIM 0.759 against the grey input's 0.863
    sections = html.split("<h2>")[1:]
    assert len(sections) == 2 and "grey" not in sections[0] and "identity" not in sections[1]  # no experiment beside another's numbers


@pytest.mark.parametrize(
    ("key", "value"),
    [("directions", {"l1": "smaller"}), ("baselines", {"identity": {"l1": "low"}}), ("baselines", [0.05])],
)
def test_malformed_baselines_are_one_error_line_naming_the_file_and_key(tmp_path, make_results, invoke, assert_user_error, key, value):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    write_summary(eval_dir, {**INPAINTING, key: value})
    result = invoke(report_stage.app, "--eval-dir", str(eval_dir), "--run-dir", str(run_dir), "--output-dir", str(tmp_path / "report"))
    assert_user_error(result, str(eval_dir / "evaluation.json"), f"'{key}'")
    assert not (tmp_path / "report").exists()


def test_a_report_of_an_older_evaluation_says_it_has_no_baselines(tmp_path, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["one"])  # metrics.json without directions or baselines
    build_report("old", eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert "No baselines" in html and "model beats it" not in html
    (eval_dir / "evaluation.json").write_text(json.dumps({"l1": 0.3, "directions": {}}))  # a mean in both files
    with pytest.raises(UserError, match=re.escape(f"{eval_dir / 'evaluation.json'}: 'l1' also in metrics.json")):
        build_report("old", eval_dir, run_dir, tmp_path / "report2")
