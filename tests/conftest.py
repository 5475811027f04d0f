"""Shared test helpers: tiny generated datasets and running the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# Small enough for a few CPU seconds, large enough to exercise every layer type.
TINY = ["--crop_size", "32", "--load_size", "36", "--ngf", "8", "--ndf", "8"]


def make_pairs(folder: Path, count: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A|B training images: B is a smooth function of A, so the mapping is learnable."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        base = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
        a = np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR))
        b = 255 - a
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{index}.png")
    return folder


def make_photos(folder: Path, count: int = 3, size: int = 40) -> Path:
    """Plain colour photos for colorization, cut from a photograph scikit-image ships."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    photo = data.astronaut()
    for index in range(count):
        crop = photo[index * 60 : index * 60 + 160, index * 50 : index * 50 + 160]
        Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS).save(folder / f"photo{index}.png")
    return folder


def run_cli(*args: str, check: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m stages.<stage> ...`` or the ``pix2pix`` entry point in a subprocess."""
    env = {**kwargs.pop("env", os.environ), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=kwargs.pop("cwd", ROOT), env=env, capture_output=True, text=True,
        timeout=timeout, **kwargs,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, a single ``error:`` line naming what went wrong, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def training_batches(pairs: Path, config, count: int = 1, batch_size: int = 1) -> list:
    """The first ``count`` (inputs, targets) batches of epoch 0, seed 0, that training draws from ``pairs``."""
    from pix2pix.data.dataset import TrainingSet
    from pix2pix.data.images import list_images

    dataset = TrainingSet(list_images(pairs), config.task, config.load_size, config.crop_size)
    plan = dataset.epoch_plan(0, 0)
    return [dataset.batch(plan, index, batch_size) for index in range(count)]


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    return make_pairs(tmp_path / "pairs")


def workflow_module(name: str):
    """``workflow.NAME``, the Snakefile's helpers: they live at the repo root, outside the installed packages."""
    import importlib

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"workflow.{name}")
