"""Under `dvc repro`, an interrupted training resumes from its checkpoint (DVC keeps the persist
outs checkpoint.pt and losses.csv), and one whose inputs changed starts afresh (--restart-if-changed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch

VENV_BIN = Path(sys.executable).parent
RUN = Path("models") / "facades"


def direct_training(clone: Path, output_dir: Path) -> subprocess.CompletedProcess:
    """The stage's training, run by hand into another folder: what an uninterrupted run gives."""
    command = [
        str(VENV_BIN / "pix2pix"), "train", "--input_dir", "data/split/facades/train", "--output_dir", str(output_dir),
        "--params", "params.yaml", "--section", "experiments.facades.train",
    ]  # fmt: skip
    return subprocess.run(command, cwd=clone, env=environment(clone), capture_output=True, text=True, check=True, timeout=900)


def environment(clone: Path) -> dict[str, str]:
    # SHELL unset, as in CI: DVC then runs commands with /bin/sh, which (dash) forks instead of exec'ing
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(clone)}
    env.pop("SHELL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_a_killed_training_resumes_and_changed_inputs_start_afresh(clone, dvc, edit_params, tmp_path):
    edit_params(clone, lambda p: p["experiments"]["facades"]["train"].update(n_epochs=60, n_epochs_decay=0, save_freq=12, log_freq=6))
    dvc("repro", "split@facades", cwd=clone)
    checkpoint = clone / RUN / "checkpoint.pt"
    repro = subprocess.Popen(
        [str(VENV_BIN / "dvc"), "repro", "train@facades"], cwd=clone, env=environment(clone),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and repro.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(repro.pid, signal.SIGKILL)  # dvc, its shell and pix2pix train, at once
    repro.wait()
    step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < step < 360 and not (clone / RUN / "generator.pt").exists()

    output = dvc("repro", "train@facades", cwd=clone)
    assert f"resuming from step {step} of 360" in output.stdout + output.stderr
    direct_training(clone, tmp_path / "whole")
    for name in ("generator.pt", "losses.csv"):
        assert (clone / RUN / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name

    edit_params(clone, lambda p: p["experiments"]["facades"]["train"].update(lr=0.0001))
    output = dvc("repro", "train@facades", cwd=clone)  # the finished checkpoint is still there, with the old lr
    assert "trained afresh" in output.stdout + output.stderr and "resuming" not in output.stdout + output.stderr
    direct_training(clone, tmp_path / "fresh")
    for name in ("generator.pt", "losses.csv"):
        assert (clone / RUN / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name


def test_a_training_ends_with_the_dvc_that_started_it(clone, dvc, edit_params):
    """SIGKILL of `dvc repro` alone: its `pix2pix train` gets SIGTERM, checkpoints and exits; the next repro resumes.

    The schedule is far longer than the test waits (a fast machine must not finish it before the kill lands); the
    resumed run is stopped once it says where it resumes."""
    epochs = 100_000
    edit_params(clone, lambda p: p["experiments"]["facades"]["train"].update(n_epochs=epochs, n_epochs_decay=0, save_freq=10**7))
    repro = psutil.Popen(
        [str(VENV_BIN / "dvc"), "repro", "train@facades"], cwd=clone, env=environment(clone),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not (trainers := [p for p in repro.children(recursive=True) if "train" in p.cmdline()]):
        assert time.monotonic() < deadline and repro.poll() is None
        time.sleep(0.05)
    losses = clone / RUN / "losses.csv"
    before = losses.read_bytes()  # the last run's (persist): the new run starts a new one
    while not (losses.exists() and losses.read_bytes() != before and len(losses.read_text().splitlines()) > 2):
        assert time.monotonic() < deadline and repro.poll() is None
        time.sleep(0.05)
    repro.kill()
    repro.wait()
    gone, alive = psutil.wait_procs(trainers, timeout=max(deadline - time.monotonic(), 60))
    assert not alive, [p.cmdline() for p in alive]
    step = torch.load(clone / RUN / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < epochs * 6  # its SIGTERM checkpoint, mid-training (save_freq is out of reach)

    resumed = subprocess.Popen(
        [str(VENV_BIN / "dvc"), "repro", "train@facades"], cwd=clone, env=environment(clone),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        said = ""
        for line in resumed.stdout:
            said += line
            if "resuming from step" in line:
                break
        assert f"resuming from step {step} of {epochs * 6}" in said, said
    finally:
        os.killpg(resumed.pid, signal.SIGKILL)
        resumed.wait()
