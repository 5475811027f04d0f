"""Training: it learns, it is deterministic, and a killed run resumes to the same weights."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.data.dataset import TrainingSet
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.nn.device import Acceleration
from pix2pix.task import Task
from pix2pix.train import pix2pix_model
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import Pix2Pix, train


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_model_overfits_a_fixed_batch(tmp_path, make_pairs):
    """L1 falls at least 5x in a few hundred steps on one 32 px pair."""
    config = TrainConfig(crop_size=32, load_size=32, flip=False, ngf=16, ndf=16, device="cpu")
    dataset = TrainingSet(list_images(make_pairs(tmp_path, count=1)), config.task, 32, 32, flip=False)
    inputs, targets = dataset.batch(dataset.epoch_plan(0, 0), 0, 1)
    torch.manual_seed(0)
    model = Pix2Pix(config, torch.device("cpu"))
    history = [float(model.train_step(inputs, targets)["G_L1"]) for _ in range(300)]
    assert history[-1] * 5 <= history[0], (history[0], history[-1])


def test_same_seed_gives_identical_weights(tmp_path, pairs, tiny_config):
    paths = list_images(pairs)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(TrainConfig(max_steps=6, seed=seed, **tiny_config), paths, tmp_path / name)
        runs[name] = ckpt.load(tmp_path / name / ckpt.GENERATOR_NAME)["generator"]
    assert same_weights(runs["a"], runs["b"])
    assert not same_weights(runs["a"], runs["c"])


def test_resume_in_process_equals_uninterrupted_across_epochs(tmp_path, pairs, tiny_config):
    """Stop mid-epoch (max_steps), then continue with a longer run: same weights, same optimisers."""
    paths = list_images(pairs)  # 4 images: 4 steps per epoch
    full = TrainConfig(max_epochs=3, n_epochs=1, n_epochs_decay=2, **tiny_config)
    train(full, paths, tmp_path / "full")
    train(full.model_copy(update={"max_steps": 6}), paths, tmp_path / "split")
    summary = train(full, paths, tmp_path / "split")
    assert summary["steps"] == 12
    whole, resumed = (ckpt.load(tmp_path / name / ckpt.CHECKPOINT_NAME) for name in ("full", "split"))
    for key in ("generator", "discriminator"):
        assert same_weights(whole[key], resumed[key])
    assert whole["optimizer_g"]["param_groups"][0]["lr"] == resumed["optimizer_g"]["param_groups"][0]["lr"]
    steps = [int(row["step"]) for row in csv.DictReader((tmp_path / "split" / "losses.csv").open())]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_early_steps_give_bit_identical_weights_and_free_large_gradients(pairs, monkeypatch, tiny_config, training_batches):
    """G's large parameters stepped during the backward pass, the small ones after it: the same weights
    and optimiser state as one step after backward, and no large gradient kept."""
    monkeypatch.setattr(pix2pix_model, "EARLY_STEP_MIN_ELEMENTS", 4096)  # the tiny model has both kinds
    config = TrainConfig(**tiny_config)
    batches = training_batches(pairs, config, count=4)
    models = {}
    for early in (True, False):
        torch.manual_seed(0)
        models[early] = model = Pix2Pix(config, torch.device("cpu"), early_steps=early)
        for inputs, targets in batches:
            model.train_step(inputs, targets)
    early, plain = models[True], models[False]
    sizes = [p.numel() for p in early.generator.parameters()]
    assert min(sizes) < 4096 <= max(sizes)
    for name in ("generator", "discriminator", "optimizer_g", "optimizer_d"):
        a, b = getattr(early, name).state_dict(), getattr(plain, name).state_dict()
        if name.startswith("optimizer"):
            assert a["param_groups"] == b["param_groups"]
            a, b = ({f"{i}.{k}": v for i, state in d["state"].items() for k, v in state.items()} for d in (a, b))
        assert same_weights(a, b), name
    for parameter in early.generator.parameters():
        assert (parameter.grad is None) == (parameter.numel() >= 4096)
    assert all(p.grad is not None for p in plain.generator.parameters())


def test_no_early_steps_with_a_loss_scaler(pairs, monkeypatch, tiny_config, training_batches):
    """fp16's GradScaler skips a whole step when any gradient overflows: every gradient has to wait for it."""
    monkeypatch.setattr(pix2pix_model, "EARLY_STEP_MIN_ELEMENTS", 4096)
    config = TrainConfig(**tiny_config)
    model = Pix2Pix(config, torch.device("cpu"), acceleration=Acceleration(torch.device("cpu"), amp_dtype=torch.float16))
    assert model.scaler.is_enabled()
    model.train_step(*training_batches(pairs, config)[0])
    assert all(p.grad is not None for p in model.generator.parameters())


def test_linear_decay_schedule_matches_reference():
    config = TrainConfig(n_epochs=100, n_epochs_decay=100)
    assert config.lr_factor(0) == config.lr_factor(99) == 1.0
    assert config.lr_factor(100) == pytest.approx(100 / 101)
    assert config.lr_factor(199) == pytest.approx(1 / 101)


def test_lab_colorization_trains_on_plain_photos(tmp_path, make_photos, tiny_config):
    photos = list_images(make_photos(tmp_path / "photos"))
    config = TrainConfig(lab_colorization=True, max_steps=2, **tiny_config)
    train(config, photos, tmp_path / "run")
    payload = ckpt.load(tmp_path / "run" / ckpt.GENERATOR_NAME)
    assert payload["generator"]["encoder.0.0.weight"].shape[1] == 1  # L in
    assert payload["generator"]["decoder.4.1.weight"].shape[1] == 2  # ab out


def test_jitter_uses_one_crop_and_flip_for_input_and_target(tmp_path, make_pairs):
    """A and B of a pair must stay aligned after the random crop and flip."""
    dataset = TrainingSet(list_images(make_pairs(tmp_path, count=3, size=36)), Task("AtoB"), 36, 32)  # no resize
    for epoch in range(4):
        inputs, targets = dataset.batch(dataset.epoch_plan(0, epoch), 0, 3)
        assert torch.allclose(targets, -inputs, atol=1e-6)  # B = 255 - A exactly


def test_resume_with_other_architecture_is_refused(tmp_path, pairs, tiny_config):
    paths = list_images(pairs)
    train(TrainConfig(max_steps=1, **tiny_config), paths, tmp_path / "run")
    with pytest.raises(UserError, match="ngf 8 -> 16"):
        train(TrainConfig(max_steps=2, **{**tiny_config, "ngf": 16}), paths, tmp_path / "run")


@pytest.fixture
def train_command(tiny_args):
    def train_command(data: Path, out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "stages.train", "--input_dir", str(data), "--output_dir", str(out), *tiny_args, "--seed", "1", *extra]

    return train_command


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, make_pairs, repo_root, run_cli, train_command):
    data = make_pairs(tmp_path / "data", count=8)
    args = ("--max_steps", "150", "--save_freq", "10")
    run_cli(*train_command(data, tmp_path / "whole", *args)[2:], check=True)

    process = subprocess.Popen(train_command(data, tmp_path / "killed", *args), cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(tmp_path / "killed" / ckpt.CHECKPOINT_NAME, process)
    process.kill()
    process.wait()
    assert not (tmp_path / "killed" / ckpt.GENERATOR_NAME).exists(), "the run finished before it was killed"
    step_at_kill = ckpt.load(tmp_path / "killed" / ckpt.CHECKPOINT_NAME)["step"]
    assert 0 < step_at_kill < 150

    run_cli(*train_command(data, tmp_path / "killed", *args)[2:], check=True)
    whole, resumed = (ckpt.load(tmp_path / name / ckpt.CHECKPOINT_NAME) for name in ("whole", "killed"))
    assert resumed["step"] == whole["step"] == 150
    for key in ("generator", "discriminator"):
        assert same_weights(whole[key], resumed[key])
    assert same_weights(whole["optimizer_g"]["state"][0], resumed["optimizer_g"]["state"][0])


def test_sigterm_checkpoints_and_exits_nonzero(tmp_path, make_pairs, repo_root, train_command):
    data = make_pairs(tmp_path / "data", count=8)
    out = tmp_path / "run"
    process = subprocess.Popen(
        train_command(data, out, "--max_steps", "100000", "--log_freq", "1"),
        cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(out / "losses.csv", process)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM" in stderr and "checkpoint saved" in stderr
    saved = ckpt.load(out / ckpt.CHECKPOINT_NAME)
    assert 0 < saved["step"] < 100000


def test_rerunning_a_finished_run_does_nothing(tmp_path, pairs, run_cli, tiny_args):
    args = ["stages.train", "--input_dir", str(pairs), "--output_dir", str(tmp_path / "run"), *tiny_args, "--max_steps", "2"]
    run_cli(*args, check=True)
    before = (tmp_path / "run" / ckpt.GENERATOR_NAME).stat().st_mtime_ns
    result = run_cli(*args, check=True)
    assert "already complete" in result.stderr
    assert (tmp_path / "run" / ckpt.GENERATOR_NAME).stat().st_mtime_ns == before


@pytest.mark.parametrize("bad", ["missing", "empty", "not_image", "crop"])
def test_bad_training_input_is_one_line_exit_2(tmp_path, bad, assert_user_error, make_pairs, run_cli, tiny_args):
    data = tmp_path / "data"
    extra: list[str] = []
    if bad == "empty":
        data.mkdir()
    elif bad == "not_image":
        make_pairs(data, count=2)
        (data / "notes.png").write_text("this is not a png")
    elif bad == "crop":
        make_pairs(data, count=2)
        extra = ["--crop_size", "48", "--load_size", "48", "--unet_depth", "5"]
    out = tmp_path / "out"
    result = run_cli("stages.train", "--input_dir", str(data), "--output_dir", str(out), *tiny_args, *extra, "--max_steps", "1")
    fragment = {"missing": str(data), "empty": "no images", "not_image": "notes.png", "crop": "not divisible"}[bad]
    assert_user_error(result, fragment)
    assert not (out / ckpt.CHECKPOINT_NAME).exists()


def test_bad_option_value_names_the_option(tmp_path, pairs, assert_user_error, run_cli):
    result = run_cli("stages.train", "--input_dir", str(pairs), "--output_dir", str(tmp_path / "o"), "--which_direction", "sideways")
    assert_user_error(result, "direction")


def test_image_cache_is_built_once_and_reused(tmp_path, make_pairs):
    paths = list_images(make_pairs(tmp_path / "pairs", count=3, size=40))
    task, cache = Task("BtoA"), tmp_path / "cache"
    in_memory = TrainingSet(paths, task, 36, 32)
    decoded = []
    first = TrainingSet(paths, task, 36, 32, progress=decoded.append, cache_dir=cache)
    assert decoded == [1, 1, 1] and isinstance(first.pixels, np.memmap)
    assert np.array_equal(first.pixels, in_memory.pixels) and first.pixels.shape == (3, 2, 36, 36, 3)
    files = sorted(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    reused = []
    TrainingSet(paths, task, 36, 32, progress=reused.append, cache_dir=cache)
    assert reused == [3] and sorted(cache.iterdir()) == files  # mapped, not decoded again
    plan = in_memory.epoch_plan(0, 0)
    for index in range(3):
        assert all(torch.equal(a, b) for a, b in zip(in_memory.batch(plan, index, 1), first.batch(plan, index, 1)))

    files[0].write_bytes(files[0].read_bytes()[:200])  # a damaged cache is rebuilt
    rebuilt = []
    TrainingSet(paths, task, 36, 32, progress=rebuilt.append, cache_dir=cache)
    assert rebuilt == [1, 1, 1] and np.array_equal(np.load(files[0]), in_memory.pixels)
    Image.new("RGB", (80, 40), "white").save(paths[0])  # an edited image: another cache
    TrainingSet(paths, task, 36, 32, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2


def test_training_from_the_cache_gives_the_same_weights(tmp_path, pairs, tiny_config):
    paths = list_images(pairs)
    config = TrainConfig(max_steps=4, **tiny_config)
    train(config, paths, tmp_path / "memory")
    train(config, paths, tmp_path / "mapped", cache_dir=tmp_path / "cache")
    runs = [ckpt.load(tmp_path / name / ckpt.GENERATOR_NAME)["generator"] for name in ("memory", "mapped")]
    assert same_weights(*runs)


def test_unwritable_cache_dir_is_one_line_exit_2(tmp_path, pairs, assert_user_error, run_cli, tiny_args):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    out = tmp_path / "run"
    result = run_cli("stages.train", "--input_dir", str(pairs), "--output_dir", str(out), *tiny_args, "--max_steps", "1", "--cache_dir", str(blocker / "cache"))
    assert_user_error(result, "not-a-folder", "image cache")
    assert not out.exists()
