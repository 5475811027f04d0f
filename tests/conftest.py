"""Shared test fixtures: the tiny training config, generated data, running the CLI as a user would.

Tests live in ``unit/`` (in-process, or one stage run of a few seconds) and ``integration/`` (real
tools, servers and browsers, several processes, longer runs; its own fixtures in its conftest.py).
Each test is marked with its folder's name, so ``-m unit`` and ``-m integration`` select them too.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import importlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.support import demo
from tests.support.file_server import Server

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Small enough for a few CPU seconds, large enough to exercise every layer type.
TINY = MappingProxyType({"crop_size": 32, "load_size": 36, "ngf": 8, "ndf": 8, "device": "cpu"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(item.path.relative_to(TESTS).parts[0])  # unit or integration


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout under test: the working directory and PYTHONPATH of the processes tests start."""
    return ROOT


@pytest.fixture(scope="session")
def tiny_config() -> MappingProxyType:
    """The tiny pix2pix model as TrainConfig fields (read-only): ``TrainConfig(max_steps=2, **tiny_config)``."""
    return TINY


@pytest.fixture(scope="session")
def tiny_args() -> tuple[str, ...]:
    """The same tiny model as command-line options of ``stages.train``."""
    return tuple(arg for name, value in TINY.items() for arg in (f"--{name}", str(value)))


@pytest.fixture(scope="session")
def make_pairs():
    """``make_pairs(folder, count=4, size=32, seed=0)``: A|B training images; B is a smooth function of A, so the mapping is learnable."""

    def make_pairs(folder: Path, count: int = 4, size: int = 32, seed: int = 0) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for index in range(count):
            base = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
            a = np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR))
            b = 255 - a
            Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{index}.png")
        return folder

    return make_pairs


@pytest.fixture
def pairs(tmp_path: Path, make_pairs) -> Path:
    return make_pairs(tmp_path / "pairs")


@pytest.fixture(scope="session")
def make_photos():
    """``make_photos(folder, count=3, size=40)``: plain colour photos for colorization, cut from a photograph scikit-image ships."""

    def make_photos(folder: Path, count: int = 3, size: int = 40) -> Path:
        from skimage import data

        folder.mkdir(parents=True, exist_ok=True)
        photo = data.astronaut()
        for index in range(count):
            crop = photo[index * 60 : index * 60 + 160, index * 50 : index * 50 + 160]
            Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS).save(folder / f"photo{index}.png")
        return folder

    return make_photos


@pytest.fixture(scope="session")
def random_png():
    """``random_png(height, width, seed=0, fmt="PNG")``: an encoded image of random pixels."""

    def random_png(height: int, width: int, seed: int = 0, fmt: str = "PNG") -> bytes:
        buffer = io.BytesIO()
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format=fmt)
        return buffer.getvalue()

    return random_png


@pytest.fixture(scope="session")
def bomb_png():
    """``bomb_png(path)``: a tiny file whose header claims 20000 x 20000 pixels, over PIL's decompression-bomb limit."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    def bomb_png(path: Path) -> Path:
        header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
        return path

    return bomb_png


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(*args, check=False, timeout=300, **kwargs)``: ``python -m stages.<stage> ...`` (or
    ``stages.cli``, the ``pix2pix`` command) in a subprocess, from the checkout, as a user would."""

    def run_cli(*args: str, check: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        env = {**kwargs.pop("env", os.environ), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
        result = subprocess.run(
            [sys.executable, "-m", *args], cwd=kwargs.pop("cwd", ROOT), env=env, capture_output=True, text=True,
            timeout=timeout, **kwargs,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    return run_cli


@pytest.fixture(scope="session")
def invoke():
    """``invoke(stage_app, *args)``: a stage command in this process (no interpreter start-up), with a result shaped like run_cli's."""
    from typer.testing import CliRunner

    def invoke(stage_app, *args: str) -> subprocess.CompletedProcess:
        result = CliRunner().invoke(stage_app, list(args))
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture(scope="session")
def assert_user_error():
    """``assert_user_error(result, *fragments)``: exit code 2, a single ``error:`` line naming what went wrong, and no traceback."""

    def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
        assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        for fragment in fragments:
            assert fragment in errors[0], (fragment, errors[0])

    return assert_user_error


@pytest.fixture(scope="session")
def training_batches():
    """``training_batches(pairs, config, count=1, batch_size=1)``: the first ``count`` (inputs, targets)
    batches of epoch 0, seed 0, that training draws from the folder ``pairs``."""
    from pix2pix.data.dataset import TrainingSet
    from pix2pix.data.images import list_images

    def training_batches(pairs: Path, config, count: int = 1, batch_size: int = 1) -> list:
        dataset = TrainingSet(list_images(pairs), config.task, config.load_size, config.crop_size)
        plan = dataset.epoch_plan(0, 0)
        return [dataset.batch(plan, index, batch_size) for index in range(count)]

    return training_batches


@pytest.fixture(scope="session")
def workflow_module():
    """``workflow_module(name)``: ``workflow.NAME``, the Snakefile's helpers; they live at the repo root, outside the installed packages."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return lambda name: importlib.import_module(f"workflow.{name}")


@pytest.fixture(scope="session")
def csp():
    """Reading a page's Content-Security-Policy: ``csp.directives(policy)``, ``csp.inline_scripts(html)``, ``csp.sha256_source(script)``."""

    def inline_scripts(html: str) -> list[str]:
        """The texts of a page's executable inline scripts (JSON data blocks do not run)."""
        return re.findall(r"<script>(.*?)</script>", html, re.DOTALL)

    def sha256_source(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"

    def directives(policy: str) -> dict[str, list[str]]:
        return {name: sources for name, *sources in (part.split() for part in policy.split(";"))}

    return SimpleNamespace(inline_scripts=inline_scripts, sha256_source=sha256_source, directives=directives)


@pytest.fixture(scope="session")
def hostile() -> SimpleNamespace:
    """Text harmless only if escaped: as HTML the name would run a handler (as JSON text, open a comment), the title would close the script."""
    return SimpleNamespace(
        name='<!--<img src=x onerror="document.body.dataset.pwned=1">&\'',
        title='</script><script>alert(1)</script> & "quotes"',
    )


@pytest.fixture(scope="session")
def make_results(random_png):
    """``make_results(root, names, loss_steps=119)``: what `pix2pix evaluate` and `pix2pix train` leave behind,
    written by hand: (eval dir, run dir). The run's losses.csv has ``loss_steps`` rows (0: the header alone)."""

    def make_results(root: Path, names: list[str], loss_steps: int = 119) -> tuple[Path, Path]:
        eval_dir, run_dir = root / "results", root / "run"
        (eval_dir / "images").mkdir(parents=True)
        run_dir.mkdir()
        images = {kind: random_png(32, 32, seed) for seed, kind in enumerate(("inputs", "outputs", "targets"))}  # encoded once
        for name in names:
            for kind, data in images.items():
                (eval_dir / "images" / f"{name}-{kind}.png").write_bytes(data)
        rng = np.random.default_rng(0)
        with (eval_dir / "metrics.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", "l1", "psnr", "ssim"])
            writer.writerows([name, *np.round(rng.random(3), 6)] for name in names)
        summary = {"l1": 0.25, "psnr": 21.5, "ssim": 0.5, "count": len(names), "eval_mode": "train"}
        (eval_dir / "metrics.json").write_text(json.dumps(summary))
        rows = "".join(f"{s},0,{1 + s / 100},{0.5 - s / 500},0.6,0.4,0.0002\n" for s in range(1, loss_steps + 1))
        (run_dir / "losses.csv").write_text("step,epoch,G_GAN,G_L1,D_real,D_fake,lr\n" + rows)
        (run_dir / "options.json").write_text(json.dumps({"direction": "BtoA", "crop_size": 256}))
        return eval_dir, run_dir

    return make_results


@pytest.fixture
def server(monkeypatch):
    """A 127.0.0.1 file server (``tests.support.file_server.Server``), proxy variables cleared."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    serving = Server()
    yield serving
    serving.close()


@pytest.fixture(scope="session")
def start_server(repo_root):
    """``start_server(run, *args)``: ``python -m stages.serve`` on a free port; returns the process and the URL it prints."""
    return functools.partial(demo.start_server, repo_root)
