"""Hostile training (issue 22): non-finite options and divergence, two trainings in one run folder,
changed options on resume. Each case is refused in one line, or stops without losing finished work."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.options import DeviceOptions
from pix2pix.train import cgan, pix2pix_model
from pix2pix.train.config import OPTIMISATION_KEYS, CGANConfig, TrainConfig
from pix2pix.train.loop import LOCK_NAME, TrainingDiverged, fit, locked_run_folder
from stages.options import validated
from tests.support.trainable import OneWeight

FLOAT_FIELDS = [
    (model, name) for model in (TrainConfig, CGANConfig) for name, field in model.model_fields.items() if field.annotation is float
]


@pytest.fixture
def train_args(tiny_args):
    def train_args(data: Path, out: Path, *extra: str) -> list[str]:
        return ["stages.train", "--input_dir", str(data), "--output_dir", str(out), *tiny_args, "--seed", "1", *extra]

    return train_args


@pytest.fixture
def mlflow_store(tmp_path) -> tuple[dict, str]:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    return {**os.environ, "MLFLOW_TRACKING_URI": uri}, uri


def mlflow_runs(uri: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hostile")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def logged_steps(run_dir: Path) -> list[int]:
    with (run_dir / "losses.csv").open(newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


# 1. Non-finite training


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e39])
@pytest.mark.parametrize(("model", "name"), FLOAT_FIELDS, ids=[f"{m.__name__}.{n}" for m, n in FLOAT_FIELDS])
def test_every_float_option_refuses_what_float32_cannot_hold(model, name, value):
    assert len(FLOAT_FIELDS) >= 10  # the lookup found them: lr, weights, betas, dropout, mode_seeking
    with pytest.raises(UserError, match=f"option --{name.replace('_', '-')}: "):
        validated(model, {name: value})


def test_a_non_finite_option_is_one_line_before_any_data_is_read(tmp_path, run_cli, train_args, assert_user_error):
    out = tmp_path / "run"
    result = run_cli(*train_args(tmp_path / "none", out, "--lr", "inf"))
    assert_user_error(result, "option --lr: inf is not allowed")
    assert not out.exists()


def test_a_non_finite_weight_in_params_yaml_is_one_line_naming_file_and_key(tmp_path, repo_root, run_cli, assert_user_error):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["experiments"]["facades"]["train"]["l1_weight"] = math.inf
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert "l1_weight: .inf" in path.read_text()
    out = tmp_path / "run"
    result = run_cli("stages.train", "-i", str(tmp_path / "none"), "-o", str(out), "--params", str(path), "--section", "experiments.facades.train")
    assert_user_error(result, f"{path}: experiments.facades.train.l1_weight: inf is not allowed")
    assert not out.exists()


def test_a_schedule_of_zero_epochs_is_refused(tmp_path, run_cli, train_args, assert_user_error):
    out = tmp_path / "run"
    result = run_cli(*train_args(tmp_path / "none", out, "--n_epochs", "0", "--n_epochs_decay", "0"))
    assert_user_error(result, "n_epochs and n_epochs_decay are both 0")
    assert not out.exists()


def test_a_finite_config_that_diverges_stops_at_the_first_nan_loss(tmp_path, pairs, run_cli, train_args, assert_user_error):
    """gan_weight 1e38 is finite in float32, but its gradients are not: G's weights are NaN after step 1,
    so step 2's losses are NaN. Nothing NaN is written, and no generator.pt."""
    out = tmp_path / "run"
    result = run_cli(*train_args(pairs, out, "--gan_weight", "1e38", "--max_steps", "6", "--log_freq", "1"))
    assert_user_error(result, f"{out}: step 2: G_GAN is nan", "no checkpoint was written")
    assert logged_steps(out) == [1]
    assert not (out / ckpt.GENERATOR_NAME).exists() and not (out / ckpt.CHECKPOINT_NAME).exists()
    assert not (out / LOCK_NAME).exists()


def test_a_checkpoint_with_non_finite_weights_is_not_written(tmp_path, pairs, run_cli, train_args, assert_user_error):
    """The same divergence with a checkpoint due after step 1: the weights are checked before it is saved."""
    out = tmp_path / "run"
    result = run_cli(*train_args(pairs, out, "--gan_weight", "1e38", "--max_steps", "6", "--save_freq", "1"))
    assert_user_error(result, f"{out}: step 1: a weight or optimiser state is not finite")
    assert not (out / ckpt.GENERATOR_NAME).exists() and not (out / ckpt.CHECKPOINT_NAME).exists()


class DivergesAt(OneWeight):
    """A one-weight model whose weight grows by 1 per step and whose loss is NaN from step ``bad_step`` on."""

    def __init__(self, bad_step: int):
        super().__init__()
        self.steps, self.bad_step = 0, bad_step

    def epoch_plan(self, epoch: int) -> None:
        return None

    def batch(self, plan: None, index: int) -> tuple[torch.Tensor]:
        return (torch.zeros(1),)

    def train_step(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.steps += 1
        with torch.no_grad():
            self.generator.weight.add_(1.0)
        return {"loss": torch.tensor(math.nan if self.steps >= self.bad_step else 1.0)}


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    config = CGANConfig(batch_size=1, max_steps=10, save_freq=2, log_freq=1)
    model = DivergesAt(bad_step=5)
    initial = model.generator.weight.detach().clone()
    with pytest.raises(TrainingDiverged, match=r"step 5: loss is nan; .*checkpoint.pt of step 4 is kept"):
        fit(lambda: model, config, out, items=10, epochs=1, resume_keys=())
    saved = ckpt.load(out / ckpt.CHECKPOINT_NAME)
    assert saved["step"] == 4 and torch.equal(saved["generator"]["weight"], initial + 4)
    assert logged_steps(out) == [1, 2, 3, 4]
    assert not (out / ckpt.GENERATOR_NAME).exists() and not (out / LOCK_NAME).exists()


def test_a_diverged_training_ends_its_mlflow_run_failed(tmp_path, pairs, run_cli, train_args, mlflow_store, assert_user_error):
    env, uri = mlflow_store
    result = run_cli(*train_args(pairs, tmp_path / "run", "--gan_weight", "1e38", "--max_steps", "6", "--mlflow-experiment", "hostile"), env=env)
    assert_user_error(result, "step 2: G_GAN is nan")
    [run] = mlflow_runs(uri)
    assert run.info.status == "FAILED"
    assert "step 2: G_GAN is nan" in run.data.tags["pix2pix.error"]


# 2. One training per run folder


def test_a_second_training_in_a_busy_run_folder_fails_at_once_naming_the_pid(tmp_path, make_pairs, repo_root, run_cli, train_args, assert_user_error):
    """The issue's two trainings at once; after the first is SIGKILLed its lock is gone with it."""
    data, out = make_pairs(tmp_path / "data", count=8), tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", *train_args(data, out, "--max_steps", "100000", "--log_freq", "1")],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "losses.csv").exists():  # training, not only locked
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
        second = run_cli(*train_args(data, out, "--max_steps", "100000", "--log_freq", "1"))
        assert_user_error(second, f"{out}: another training (PID {first.pid}) is running in this folder")
    finally:
        first.kill()
        first.wait()
    steps = logged_steps(out)
    assert steps == list(range(1, len(steps) + 1))  # one writer
    run_cli(*train_args(data, out, "--max_steps", "3", "--log_freq", "1"), check=True)
    assert logged_steps(out) == [1, 2, 3] and not (out / LOCK_NAME).exists()


def test_a_busy_run_folder_leaves_the_holders_mlflow_run_alone(tmp_path, pairs, run_cli, train_args, mlflow_store, assert_user_error):
    env, uri = mlflow_store
    out = tmp_path / "run"
    with locked_run_folder(out):
        result = run_cli(*train_args(pairs, out, "--max_steps", "2", "--mlflow-experiment", "hostile"), env=env)
    assert_user_error(result, f"(PID {os.getpid()})")
    assert mlflow_runs(uri) == []
    assert not out.exists()  # made for the lock, left empty: removed with it


def test_cgan_train_takes_the_same_lock(tmp_path, run_cli, assert_user_error):
    out = tmp_path / "run"
    with locked_run_folder(out):
        result = run_cli("stages.cgan", "train", "-o", str(out), "--max_steps", "2", "--device", "cpu")
    assert_user_error(result, f"{out}: another training (PID {os.getpid()})")


def test_only_rank_0_of_a_ddp_run_takes_the_lock(tmp_path, pairs, repo_root, train_args):
    """Two torchrun processes in one folder: were rank 1 to lock it too, it would find it busy."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", *train_args(pairs, out, "--max_steps", "2", "--log_freq", "1"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert logged_steps(out) == [1, 2] and not (out / LOCK_NAME).exists()


# 3. Resume


CHANGES = {"gan_mode": "lsgan", "l1_weight": 10.0, "gan_weight": 2.0, "lr": 0.1, "beta1": 0.9, "beta2": 0.99, "n_epochs": 3, "n_epochs_decay": 7, "hole_weight": 4.0}


def test_resume_refuses_a_changed_objective_optimiser_or_schedule_option(tmp_path, pairs, run_cli, train_args, assert_user_error, tiny_config):
    """The saved optimiser state and schedule were made with the old values: refused, and options.json keeps them."""
    out = tmp_path / "run"
    run_cli(*train_args(pairs, out, "--max_steps", "2"), check=True)
    result = run_cli(*train_args(pairs, out, "--max_steps", "4", "--lr", "0.1"))
    assert_user_error(result, f"{out / ckpt.CHECKPOINT_NAME}: this run was started with other options (lr 0.0002 -> 0.1)")
    assert json.loads((out / "options.json").read_text())["lr"] == 2e-4
    assert ckpt.load(out / ckpt.CHECKPOINT_NAME)["step"] == 2

    paths, base = list_images(pairs), TrainConfig(max_steps=2, seed=1, **tiny_config)
    assert set(CHANGES) == set(OPTIMISATION_KEYS)
    for key, value in CHANGES.items():
        old = getattr(base, key)
        with pytest.raises(UserError, match=f"{key} {old!r} -> {value!r}"):
            pix2pix_model.train(base.model_copy(update={key: value, "max_steps": 4}), paths, out)


def test_every_option_is_kept_on_resume_or_free_to_change(tmp_path):
    """A new option has to be sorted: kept (in RESUME_KEYS) or free (length, frequency, speed, samples, what the input shows)."""
    free = {*DeviceOptions.model_fields, "max_epochs", "max_steps", "save_freq", "log_freq", "val_freq", "early_stop", "labels"}
    assert set(TrainConfig.model_fields) == set(pix2pix_model.RESUME_KEYS) | free
    free_cgan = {"device", "epochs", "max_steps", "save_freq", "log_freq", "grid_columns", "eval_per_digit"}
    assert set(CGANConfig.model_fields) == set(cgan.RESUME_KEYS) | free_cgan


def test_a_fresh_run_in_an_old_folder_starts_a_new_losses_csv(tmp_path, pairs, run_cli, train_args):
    out = tmp_path / "run"
    out.mkdir()
    (out / "losses.csv").write_text("step,epoch,G_GAN,G_L1,D_real,D_fake,lr\n" + "".join(f"{s},1,1,1,1,1,0.1\n" for s in range(1, 51)))
    run_cli(*train_args(pairs, out, "--max_steps", "2", "--log_freq", "1"), check=True)
    assert logged_steps(out) == [1, 2]
