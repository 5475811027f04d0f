"""Fixtures of the integration tests: the pipeline's tools run for real on a clone of the project, and a browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """A tool of the virtual environment, with its bin first on PATH; it must succeed."""
    # PYTHONPATH: the stages run the code of the folder they run in (a clone's edits), not the installed checkout's
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="session")
def experiments() -> tuple[str, ...]:
    """The pix2pix experiments of the default params.yaml."""
    return ("facades", "inpainting", "colorization")


def _shrink(params: dict) -> dict:
    """The default params at test scale: same graph and options, tiny data and models."""
    params["data"]["facades"].update(count=8, size=32)
    params["data"]["photos"].update(count=16, size=48)
    params["resize"]["size"] = 32
    for experiment in params["experiments"].values():
        experiment["train"].update(
            crop_size=32, load_size=36, ngf=8, ndf=8, n_epochs=1, n_epochs_decay=1, log_freq=2, sample_freq=4, save_freq=1000
        )
    for cgan in params["cgan"].values():
        cgan.update(epochs=1, eval_per_digit=10)
    return params


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo_root) -> Path:
    """The project's files (committed or not, minus ignored ones) in a fresh git repo, params at test scale.

    One per test module: its tests run in file order on it, each starting where the last one left it.
    """
    target = tmp_path_factory.mktemp("pipeline") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=repo_root, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = repo_root / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    params_path = target / "params.yaml"
    params_path.write_text(yaml.safe_dump(_shrink(yaml.safe_load(params_path.read_text())), sort_keys=False))
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "test"]):
        _run(cmd, target)
    _run([sys.executable, "-m", "workflow.plots_template"], target)  # what `make install` does: .dvc/plots.html is git-ignored
    return target


@pytest.fixture(scope="session")
def edit_params():
    """``edit_params(clone, edit)``: ``edit(params)`` on the clone's params.yaml, written back."""

    def edit_params(clone: Path, edit) -> None:
        path = clone / "params.yaml"
        params = yaml.safe_load(path.read_text())
        edit(params)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    return edit_params


@pytest.fixture(scope="session")
def dvc():
    """``dvc(*args, cwd=...)``: the result of a `dvc` command that must succeed."""
    return lambda *args, cwd: _run([str(VENV_BIN / "dvc"), *args], cwd)


@pytest.fixture(scope="session")
def snakemake_executable() -> str:
    return str(VENV_BIN / "snakemake")


@pytest.fixture(scope="session")
def snakemake(snakemake_executable):
    """``snakemake(*args, cwd=...)``: stdout and stderr of a `snakemake` command that must succeed."""

    def snakemake(*args: str, cwd: Path) -> str:
        result = _run([snakemake_executable, *args], cwd)
        return result.stdout + result.stderr

    return snakemake


@pytest.fixture(scope="session")
def chromium(repo_root) -> str:
    """Headless Chromium, installed by scripts/install-chromium.sh where the test may (CI or root)."""
    if shutil.which("chromium") is None:
        if os.environ.get("CI") != "true" and os.geteuid() != 0:
            pytest.skip("chromium is not installed: run scripts/install-chromium.sh as root")
        subprocess.run(["sh", str(repo_root / "scripts" / "install-chromium.sh")], check=True, timeout=900)
    return shutil.which("chromium") or "/usr/bin/chromium"
