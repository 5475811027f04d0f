"""Export: ONNX (run in onnxruntime) and TorchScript files compute what the PyTorch generator computes."""

from __future__ import annotations

import copy
import json

import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from pix2pix.data.images import list_images
from pix2pix.infer.evaluate import set_eval_mode
from pix2pix.infer.export import TORCHSCRIPT_METADATA, export_generator
from pix2pix.nn.networks import UNetGenerator, init_weights
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages.export import app

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:DeprecationWarning")


def randomised_generator(in_channels: int, out_channels: int, depth: int) -> UNetGenerator:
    """Weights and running statistics far from their defaults, so a wrong mapping cannot hide."""
    torch.manual_seed(depth)
    generator = UNetGenerator(in_channels, out_channels, depth=depth, ngf=8)
    init_weights(generator, gain=0.1)
    for module in generator.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.normal_(0, 0.1)
    return generator


def pytorch_reference(generator: nn.Module, mode: str) -> nn.Module:
    """eval: running statistics; train: each image's own statistics (the exported form leaves dropout out)."""
    reference = copy.deepcopy(generator)
    set_eval_mode(reference, mode)
    for module in reference.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return reference


def run_onnx(path):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["output"], {"input": x.numpy()})[0])


def run_torchscript(path):
    module = torch.jit.load(str(path))
    return lambda x: module(x)


# (task, channels in -> out, depth): depth 6 has a dropout block, so the train form must drop it.
MODELS = {"rgb": ({"direction": "AtoB", "lab_colorization": False}, 3, 3, 5), "colorization": ({"direction": "AtoB", "lab_colorization": True}, 1, 2, 6)}


@pytest.mark.parametrize(
    ("model", "mode", "fmt"),
    [(model, mode, "onnx") for model in MODELS for mode in ("eval", "train")]
    + [("rgb", "eval", "torchscript"), ("colorization", "train", "torchscript")],
)
def test_exported_file_matches_pytorch(tmp_path, model, mode, fmt):
    task, in_channels, out_channels, depth = MODELS[model]
    generator = randomised_generator(in_channels, out_channels, depth)
    config = {**task, "crop_size": 2**depth}
    path = tmp_path / f"generator.{fmt}"
    metadata = export_generator(generator, config, path, fmt, mode)
    run = (run_onnx if fmt == "onnx" else run_torchscript)(path)
    reference = pytorch_reference(generator, mode)
    multiple = 2**depth
    for batch, height, width in ((1, multiple, multiple), (2, multiple, 2 * multiple)):
        x = torch.rand(batch, in_channels, height, width) * 2 - 1
        with torch.no_grad():
            expected = reference(x)
            got = run(x)
        assert got.shape == (batch, out_channels, height, width)
        assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert metadata["spatial_multiple"] == str(multiple) and metadata["eval_mode"] == mode
    if fmt == "onnx":
        stored = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    else:
        files = {TORCHSCRIPT_METADATA: ""}
        torch.jit.load(str(path), _extra_files=files)
        stored = json.loads(files[TORCHSCRIPT_METADATA])
    assert stored == metadata and stored["lab_colorization"] == json.dumps(task["lab_colorization"])


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_pairs, tiny_config):
    root = tmp_path_factory.mktemp("export")
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), root / "run")
    return root / "run"


def test_export_command_writes_a_runnable_model(run, tmp_path, monkeypatch, invoke, run_cli):
    output = tmp_path / "model.onnx"
    result = run_cli("stages.cli", "export", "--checkpoint", str(run), "--format", "onnx", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "running statistics" in result.stdout and "multiples of 32" in result.stdout
    assert run_onnx(output)(torch.zeros(2, 3, 32, 64)).shape == (2, 3, 32, 64)
    monkeypatch.setenv("COLUMNS", "1000")  # help lines unwrapped
    help_text = invoke(app, "--help").stdout
    assert "eval:" in help_text and "train:" in help_text and "multiples of 2^depth" in help_text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--format", "tflite"], "--format 'tflite'"),
        (["--format", "onnx", "--eval_mode", "test"], "--eval_mode 'test'"),
        (["--format", "onnx", "--checkpoint", "/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_bad_options_are_one_error_line(run, tmp_path, args, fragment, assert_user_error, invoke):
    options = ["--checkpoint", str(run), "--output", str(tmp_path / "out.onnx"), *args]
    assert_user_error(invoke(app, *options), fragment)
    assert not (tmp_path / "out.onnx").exists()
