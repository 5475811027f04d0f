"""Validation during training (issue 19, item 6): val.csv, best.pt by the validation metric, early
stopping, exact resumption, training left untouched, and --which best|last for the commands that load a run."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.train import pix2pix_model
from pix2pix.train.config import TrainConfig
from pix2pix.train.loop import VAL_NAME, Callbacks, TrainingInterrupted, Validation

RUN_FILES = (ckpt.BEST_NAME, VAL_NAME, ckpt.GENERATOR_NAME)


@pytest.fixture
def data(tmp_path, make_pairs) -> tuple[list[Path], list[Path]]:
    """(training images, validation images): 4 steps an epoch."""
    return list_images(make_pairs(tmp_path / "train")), list_images(make_pairs(tmp_path / "val", count=3, seed=1))


@pytest.fixture
def config(tiny_config) -> TrainConfig:
    return TrainConfig(max_steps=6, val_freq=2, seed=1, **tiny_config)


@pytest.fixture
def dropout_config(config) -> TrainConfig:
    """With a 64 px crop the U-Net (depth 6) has a dropout layer: training and validation both draw random numbers."""
    return config.model_copy(update={"crop_size": 64, "load_size": 72})


def val_rows(run: Path) -> list[dict]:
    with (run / VAL_NAME).open(newline="") as handle:
        return list(csv.DictReader(handle))


def interrupt_after_step(step: int) -> Callbacks:
    """SIGTERM to this process after ``step``: the loop checkpoints at the next step and raises TrainingInterrupted."""
    return Callbacks(on_step=lambda report: os.kill(os.getpid(), signal.SIGTERM) if report.step == step else None)


def test_validation_leaves_training_byte_identical(tmp_path, data, dropout_config):
    paths, val_paths, config = *data, dropout_config
    pix2pix_model.train(config, paths, tmp_path / "plain")
    summary = pix2pix_model.train(config, paths, tmp_path / "validated", val_paths=val_paths)
    assert [int(row["step"]) for row in val_rows(tmp_path / "validated")] == [2, 4, 6]
    assert summary["best"]["step"] in (2, 4, 6)
    assert (tmp_path / "plain" / ckpt.GENERATOR_NAME).read_bytes() == (tmp_path / "validated" / ckpt.GENERATOR_NAME).read_bytes()
    assert not (tmp_path / "plain" / ckpt.BEST_NAME).exists() and not (tmp_path / "plain" / VAL_NAME).exists()


@pytest.mark.parametrize("metric", ["l1", "psnr"])
def test_best_pt_is_the_best_validation_and_scores_as_evaluate_does(tmp_path, data, dropout_config, metric):
    """best.pt holds the step of val.csv's best row by the metric's direction; `evaluate` (its default
    mode and seed, one image a batch) on best.pt gives that row's scores; every loader takes it."""
    paths, val_paths = data
    run = tmp_path / "run"
    pix2pix_model.train(dropout_config.model_copy(update={"val_metric": metric}), paths, run, val_paths=val_paths)
    rows = val_rows(run)
    pick = max if metric == "psnr" else min
    best_row = pick(rows, key=lambda row: float(row[metric]))
    best = ckpt.load(run / ckpt.BEST_NAME, fields=ckpt.MODEL_FIELDS)
    assert best["step"] == int(best_row["step"])
    assert best["validation"][metric] == pytest.approx(float(best_row[metric]), rel=1e-5)

    generator, saved_config = generator_from_checkpoint(run / ckpt.BEST_NAME)
    means = evaluate(generator, TrainConfig(**saved_config).task, val_paths, tmp_path / "eval", batch_size=1)
    for name in ("l1", "psnr", "ssim"):
        assert means[name] == pytest.approx(float(best_row[name]), rel=1e-5), name


def test_the_direction_of_each_metric():
    lower, higher = Validation("l1", False, 1), Validation("ssim", True, 1)
    assert lower.improves(0.1, None) and lower.improves(0.1, 0.2) and not lower.improves(0.2, 0.1) and not lower.improves(0.1, 0.1)
    assert higher.improves(0.2, 0.1) and not higher.improves(0.1, 0.2)


def test_interrupted_and_resumed_gives_byte_identical_best_val_and_generator(tmp_path, data, dropout_config):
    paths, val_paths, config = *data, dropout_config
    pix2pix_model.train(config, paths, tmp_path / "whole", val_paths=val_paths)
    with pytest.raises(TrainingInterrupted):
        pix2pix_model.train(config, paths, tmp_path / "split", interrupt_after_step(2), val_paths=val_paths)
    assert ckpt.load(tmp_path / "split" / ckpt.CHECKPOINT_NAME)["step"] == 3
    assert not (tmp_path / "split" / ckpt.GENERATOR_NAME).exists()
    pix2pix_model.train(config, paths, tmp_path / "split", val_paths=val_paths)
    for name in RUN_FILES:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "split" / name).read_bytes(), name


@pytest.fixture
def scripted_scores(monkeypatch):
    """Validation l1 scores in a given order (the best: the second), so early stopping is predictable."""
    scores = iter([0.5, 0.4, 0.45, 0.46, 0.47, 0.48])
    monkeypatch.setattr(pix2pix_model, "validation_scores", lambda *args: {"l1": next(scores)})


def test_early_stop_after_n_validations_without_improvement(tmp_path, data, config, scripted_scores):
    paths, val_paths = data
    run = tmp_path / "run"
    early = config.model_copy(update={"max_steps": 20, "early_stop": 2})
    summary = pix2pix_model.train(early, paths, run, val_paths=val_paths)
    assert summary["steps"] == 8 and summary["stopped_early"] == 2 and summary["best"] == {"step": 4, "l1": 0.4}
    assert [int(row["step"]) for row in val_rows(run)] == [2, 4, 6, 8]
    assert ckpt.load(run / ckpt.GENERATOR_NAME)["step"] == 8 and ckpt.load(run / ckpt.BEST_NAME)["step"] == 4
    assert pix2pix_model.train(early, paths, run, val_paths=val_paths).get("already_complete")


def test_early_stop_counter_resumes_from_the_checkpoint(tmp_path, data, config, scripted_scores):
    """Interrupted after the third validation (one without improvement), the resumed run stops at the same step."""
    paths, val_paths = data
    run = tmp_path / "run"
    early = config.model_copy(update={"max_steps": 20, "early_stop": 2})
    with pytest.raises(TrainingInterrupted):
        pix2pix_model.train(early, paths, run, interrupt_after_step(6), val_paths=val_paths)
    assert ckpt.load(run / ckpt.CHECKPOINT_NAME)["validation"] == {"best_score": 0.4, "best_step": 4, "stale": 1}
    summary = pix2pix_model.train(early, paths, run, val_paths=val_paths)
    assert summary["steps"] == 8 and summary["stopped_early"] == 2
    assert [int(row["step"]) for row in val_rows(run)] == [2, 4, 6, 8]


def test_a_fresh_run_in_an_old_folder_drops_its_best_and_val(tmp_path, data, config):
    """best.pt of another run would be what evaluate loads by default: a run started afresh removes it."""
    paths, val_paths = data
    run = tmp_path / "run"
    pix2pix_model.train(config, paths, run, val_paths=val_paths)
    (run / ckpt.CHECKPOINT_NAME).unlink()
    pix2pix_model.train(config, paths, run)
    assert not (run / ckpt.BEST_NAME).exists() and not (run / VAL_NAME).exists()


def test_which_picks_best_by_default_and_last_on_request(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ckpt.GENERATOR_NAME).touch()
    assert ckpt.resolve(run) == run / ckpt.GENERATOR_NAME
    with pytest.raises(UserError, match="no best.pt in this folder .train --val-dir writes it"):
        ckpt.resolve(run, "best")
    (run / ckpt.BEST_NAME).touch()
    assert ckpt.resolve(run) == ckpt.resolve(run, "best") == run / ckpt.BEST_NAME
    assert ckpt.resolve(run, "last") == run / ckpt.GENERATOR_NAME
    assert ckpt.resolve(run / ckpt.GENERATOR_NAME, "best") == run / ckpt.GENERATOR_NAME  # a file: as is


def test_every_loading_command_takes_which(tmp_path, data, config, run_cli, assert_user_error, scripted_scores):
    """export --which best|last writes the generator asked for; a wrong value, or best without best.pt, is one line."""
    paths, val_paths = data
    run = tmp_path / "run"
    pix2pix_model.train(config, paths, run, val_paths=val_paths)
    assert ckpt.load(run / ckpt.BEST_NAME)["step"] == 4
    for which in ("best", "last"):
        run_cli("stages.export", "-c", str(run), "-f", "torchscript", "-o", str(tmp_path / f"{which}.ts"), "--which", which, check=True)
    assert (tmp_path / "best.ts").read_bytes() != (tmp_path / "last.ts").read_bytes()
    assert_user_error(run_cli("stages.export", "-c", str(run), "-f", "torchscript", "-o", str(tmp_path / "x.ts"), "--which", "newest"), "--which 'newest': expected best or last")
    (run / ckpt.BEST_NAME).unlink()
    for stage, args in (
        ("stages.evaluate", ["-i", str(tmp_path / "val"), "-o", str(tmp_path / "results")]),
        ("stages.translate", ["-i", str(tmp_path / "val"), "-o", str(tmp_path / "translated")]),
        ("stages.serve", ["--port", "0"]),
    ):
        assert_user_error(run_cli(stage, "-c", str(run), "--which", "best", "--device", "cpu", *args), f"{run}: no best.pt in this folder")


def test_validation_options_are_checked_before_any_data_is_read(tmp_path, run_cli, tiny_args, assert_user_error):
    out = tmp_path / "run"
    train = ["stages.train", "-i", str(tmp_path / "none"), "-o", str(out), *tiny_args]
    assert_user_error(run_cli(*train, "--early_stop", "3"), "early_stop needs validation images: give --val-dir too")
    assert_user_error(run_cli(*train, "--val_metric", "ciede2000"), "val_metric ciede2000 is a colour difference")
    assert_user_error(run_cli(*train, "--val_freq", "0"), "--val-freq")
    assert not out.exists()
