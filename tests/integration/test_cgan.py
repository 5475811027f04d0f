"""The article's first model: MNIST IDX parsing, determinism, resume after SIGKILL, and that the
generator really draws the digit it is asked for."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.data.digits import IDX_IMAGES, IDX_LABELS, load_mnist, read_idx
from pix2pix.errors import UserError
from pix2pix.train.cgan import train
from pix2pix.train.config import CGANConfig
from pix2pix.train.loop import SAMPLE_NAME

TINY = dict(nz=16, ngf=8, ndf=8, batch_size=32, eval_per_digit=5, grid_columns=2, device="cpu")
TINY_ARGS = ["--nz", "16", "--ngf", "8", "--ndf", "8", "--batch_size", "32", "--eval_per_digit", "5", "--grid_columns", "2", "--device", "cpu"]
# Measured: 4 epochs (116 steps) of the default model reach a conditioning accuracy of 0.962
# (3 epochs: 0.934) and a diversity of 0.79, in ~10 s of training on 2 idle CPU cores (20-40 s
# on a busy machine). The bar leaves room for other torch versions and CPUs.
TRAINED = ["--epochs", "4", "--device", "cpu"]
ACCURACY_BAR = 0.8


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def write_idx(path: Path, magic: int, values: np.ndarray, compress: bool = False) -> Path:
    """An IDX file as MNIST ships it: big-endian magic and sizes, then the uint8 values."""
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in values.shape)
    raw = header + values.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_mnist(folder: Path, count: int = 20, compress: bool = False, labels=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    images = np.random.default_rng(0).integers(0, 256, (count, 28, 28))
    labels = np.arange(count) % 10 if labels is None else np.asarray(labels)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", IDX_IMAGES, images, compress)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", IDX_LABELS, labels, compress)
    return folder


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files_are_read_and_resized(tmp_path, compress):
    folder = write_mnist(tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    raw = read_idx(folder / f"train-images-idx3-ubyte{suffix}", IDX_IMAGES)
    assert raw.shape == (20, 28, 28) and raw.dtype == np.uint8
    assert np.array_equal(raw, np.random.default_rng(0).integers(0, 256, (20, 28, 28)).astype(np.uint8))
    digits = load_mnist(folder)
    assert digits.images.shape == (20, 32, 32) and digits.images.dtype == torch.uint8
    assert digits.labels.tolist() == [*range(10), *range(10)]


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("swapped", "magic number 2049, expected 2051"),
        ("truncated", "truncated or corrupt"),
        ("bad_gzip", "unreadable gzip"),
        ("count", "19 labels for 20 images"),
        ("label_range", "label 12 out of range"),
        ("scarce", "fewer than 2 images of digit 3, 9"),
        ("missing", "no train-labels-idx1-ubyte"),
        ("tiny", "4x4 pixels"),
    ],
)
def test_bad_mnist_files_are_one_clear_error_naming_the_file(tmp_path, damage, fragment):
    folder = write_mnist(tmp_path / "mnist")
    images, labels = folder / "train-images-idx3-ubyte", folder / "train-labels-idx1-ubyte"
    named = images
    if damage == "swapped":
        images.write_bytes(labels.read_bytes())
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "bad_gzip":
        images.unlink()
        images = images.with_name(images.name + ".gz")
        images.write_bytes(b"\x1f\x8b" + b"not really gzip")
        named = images
    elif damage in ("count", "label_range", "scarce"):
        values = {"count": np.arange(19) % 10, "label_range": np.r_[12, np.arange(19) % 10], "scarce": np.r_[0:10, 0:3, 0, 0, 4:9]}
        write_idx(labels, IDX_LABELS, values[damage])
        named = labels
    elif damage == "missing":
        labels.unlink()
        named = folder
    elif damage == "tiny":
        write_idx(images, IDX_IMAGES, np.zeros((20, 4, 4)))
    with pytest.raises(UserError) as error:
        load_mnist(folder)
    assert str(error.value).startswith(str(named)) and fragment in str(error.value), str(error.value)


def test_same_seed_gives_identical_weights(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(CGANConfig(max_steps=4, seed=seed, **TINY), tmp_path / name)
        runs[name] = ckpt.load(tmp_path / name / ckpt.GENERATOR_NAME)["generator"]
    assert same_weights(runs["a"], runs["b"]) and not same_weights(runs["a"], runs["c"])


def _train_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stages.cgan", "train", "--output_dir", str(out), *TINY_ARGS, "--seed", "1", *extra]


def _wait_for_step(path: Path, process: subprocess.Popen, after: int = 0, timeout: float = 60) -> None:
    """Until ``path`` is a checkpoint beyond step ``after`` (checkpoints are renamed into place)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and ckpt.load(path)["step"] > after):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never got past step {after}"
        time.sleep(0.02)


def test_sigterm_and_sigkill_then_rerun_equal_an_uninterrupted_run(tmp_path, repo_root, run_cli):
    """SIGTERM: checkpoint, exit 143. SIGKILL: the last checkpoint. Each rerun resumes to the bit."""
    args = ("--max_steps", "120", "--save_freq", "5")
    train(CGANConfig(max_steps=120, save_freq=5, seed=1, **TINY), tmp_path / "whole")
    out, checkpoint = tmp_path / "stopped", tmp_path / "stopped" / ckpt.CHECKPOINT_NAME

    process = subprocess.Popen(_train_command(out, *args), cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_step(checkpoint, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM" in stderr and "checkpoint saved" in stderr
    at_term = ckpt.load(checkpoint)["step"]

    process = subprocess.Popen(_train_command(out, *args), cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_step(checkpoint, process, after=at_term)
    process.kill()
    process.wait()
    assert not (out / ckpt.GENERATOR_NAME).exists(), "the run finished before it was killed"

    run_cli(*_train_command(out, *args)[2:], check=True)
    whole, resumed = (ckpt.load(tmp_path / name / ckpt.CHECKPOINT_NAME) for name in ("whole", "stopped"))
    assert resumed["step"] == whole["step"] == 120
    for key in ("generator", "discriminator"):
        assert same_weights(whole[key], resumed[key])
    assert same_weights(whole["optimizer_g"]["state"][0], resumed["optimizer_g"]["state"][0])
    steps = [int(line.split(",")[0]) for line in (out / "losses.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory, run_cli) -> tuple[Path, float]:
    """One run at test scale through `pix2pix cgan train`, tracked in a throwaway MLflow store."""
    where = tmp_path_factory.mktemp("cgan")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{where / 'mlflow.db'}"}
    started = time.perf_counter()
    run_cli("stages.cli", "cgan", "train", "-o", str(where / "run"), *TRAINED, "--mlflow-experiment", "digits", cwd=where, env=env, check=True)
    return where / "run", time.perf_counter() - started


def test_generator_draws_the_requested_digit(trained):
    """A logistic regression trained on real digits reads the requested digit in G's samples."""
    out, seconds = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classifier_accuracy"] > 0.9, metrics
    assert metrics["conditioning_accuracy"] >= ACCURACY_BAR, (metrics, f"{seconds:.0f} s")
    assert metrics["diversity"] > 0.5, metrics  # not one image per digit
    assert metrics["samples_per_digit"] == 100
    final, *grids = sorted(p.name for p in (out / "samples").iterdir())
    steps = [int(SAMPLE_NAME.fullmatch(name).group(1)) for name in grids]  # the training loop keeps a grid at each epoch's end
    assert final == "final.png" and steps == [steps[0] * epoch for epoch in range(1, 5)], grids
    assert (out / "samples" / grids[-1]).read_bytes() == (out / "samples" / final).read_bytes()  # the last epoch's generator
    assert Image.open(out / "samples" / "final.png").size == (10 * 34 + 2, 10 * 34 + 2)  # 10 x 10 digits, 2 px gaps


def test_training_is_tracked_in_mlflow(trained):
    out, _ = trained
    with sqlite3.connect(out.parent / "mlflow.db") as db:
        keys = {key for (key,) in db.execute("select distinct key from metrics")}
        params = dict(db.execute("select key, value from params"))
    assert {"G_GAN", "G_MS", "D_real", "D_fake", "conditioning_accuracy", "classifier_accuracy", "diversity"} <= keys
    assert params["cgan.ngf"] == "32" and params["data"] == "sklearn-digits"
    artifacts = [p.name for p in (out.parent / "mlruns").rglob("*") if p.is_file()]
    assert "generator.pt" in artifacts
    assert sum(name.startswith("samples") and name.endswith(".png") for name in artifacts) == 4  # one grid per epoch


def test_sample_command_writes_the_digits_asked_for(trained, tmp_path, run_cli):
    out, _ = trained
    args = ["--checkpoint", str(out), "--label", "7", "--label", "3", "--count", "4", "--output_dir", str(tmp_path / "s"), "--seed", "5"]
    run_cli("stages.cli", "cgan", "sample", *args, check=True)
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == [*(f"{d}_{i:03d}.png" for d in (3, 7) for i in range(4)), "grid.png"]
    assert Image.open(tmp_path / "s" / "grid.png").size == (4 * 34 + 2, 2 * 34 + 2)
    assert Image.open(tmp_path / "s" / "7_000.png").size == (32, 32)


@pytest.mark.parametrize("bad", ["mnist", "label", "pix2pix_checkpoint"])
def test_bad_input_is_one_line_exit_2(tmp_path, bad, assert_user_error, run_cli):
    if bad == "mnist":
        write_mnist(tmp_path / "mnist", labels=np.r_[0:10, 0:9, 10])
        result = run_cli("stages.cgan", "train", "--output_dir", str(tmp_path / "run"), "--mnist_dir", str(tmp_path / "mnist"))
        assert_user_error(result, "train-labels-idx1-ubyte", "label 10 out of range")
        assert not (tmp_path / "run").exists()
    elif bad == "label":
        result = run_cli("stages.cgan", "sample", "--checkpoint", str(tmp_path), "--label", "12", "--output_dir", str(tmp_path / "s"))
        assert_user_error(result, "--label", "12 is not allowed")
    else:
        ckpt.save({"architecture": {"direction": "AtoB"}, "generator": {}}, tmp_path / ckpt.GENERATOR_NAME)
        result = run_cli("stages.cgan", "sample", "--checkpoint", str(tmp_path), "--output_dir", str(tmp_path / "s"))
        assert_user_error(result, "not a `pix2pix cgan` checkpoint")


def test_help_works_standalone_and_under_pix2pix(run_cli):
    assert "--mnist-dir" in run_cli("stages.cgan", "train", "--help", check=True).stdout
    group_help = run_cli("stages.cli", "cgan", "--help", check=True).stdout
    assert "train" in group_help and "sample" in group_help
