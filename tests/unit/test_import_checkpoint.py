"""Importing pytorch-CycleGAN-and-pix2pix generators: the same function as the reference network.

``ReferenceUnet`` below re-states the reference's recursive U-Net from its description (see
pix2pix/infer/reference_import.py), independently of this project's flat ``UNetGenerator``: the
import must map one onto the other so both compute the same thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.errors import UserError
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.infer.reference_import import convert
from pix2pix.nn.networks import count_parameters
from stages.import_checkpoint import app as import_app
from stages.translate import app as translate_app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jz_unet_256_keys.json"  # tests/fixtures


class ReferenceBlock(nn.Module):
    """One UnetSkipConnectionBlock: its layers in ``self.model``, the next block nested inside."""

    def __init__(self, outer, inner, input_nc=None, submodule=None, outermost=False, innermost=False, norm="batch", dropout=False):
        super().__init__()
        self.outermost = outermost
        make_norm = nn.BatchNorm2d if norm == "batch" else nn.InstanceNorm2d
        bias = norm == "instance"
        down = nn.Conv2d(input_nc or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), make_norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, make_norm(inner), submodule,
                      nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), make_norm(outer)]  # fmt: skip
            layers += [nn.Dropout(0.5)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class ReferenceUnet(nn.Module):
    """UnetGenerator(input_nc, output_nc, num_downs, ngf): built from the innermost block outwards."""

    def __init__(self, input_nc=3, output_nc=3, num_downs=8, ngf=64, norm="batch"):
        super().__init__()
        block = ReferenceBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = ReferenceBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=True)
        for factor in (4, 2, 1):
            block = ReferenceBlock(ngf * factor, ngf * factor * 2, submodule=block, norm=norm)
        self.model = ReferenceBlock(output_nc, ngf, input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


def randomised(network: nn.Module) -> nn.Module:
    """Every tensor random (BN statistics too), so any misplaced weight changes the output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif tensor.dtype.is_floating_point:
                tensor.normal_(1.0 if name.endswith("weight") and tensor.dim() == 1 else 0.0, 0.1)
    return network.eval()


def key_shapes(state: dict) -> dict[str, list[int]]:
    return {key: list(tensor.shape) for key, tensor in state.items()}


def test_fixture_is_the_reference_unet_256_layout():
    """The committed key list (written from this re-statement) has the structure the reference documents."""
    shapes = json.loads(FIXTURE.read_text())
    assert key_shapes(ReferenceUnet().state_dict()) == shapes
    assert shapes["model.model.0.weight"] == [64, 3, 4, 4]  # outermost down-conv, no bias under batch norm
    assert shapes["model.model.3.weight"] == [128, 3, 4, 4] and shapes["model.model.3.bias"] == [3]
    assert shapes["model.model.1.model.1.weight"] == [128, 64, 4, 4]
    innermost = "model.model." + "1.model." + "3.model." * 6
    assert shapes[innermost + "1.weight"] == [512, 512, 4, 4] and shapes[innermost + "4.running_var"] == [512]
    assert sum(np.prod(shape) for key, shape in shapes.items() if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))) == 54_413_955


def test_full_size_unet_256_from_the_fixture_shapes(tmp_path):
    shapes = json.loads(FIXTURE.read_text())
    path = tmp_path / "latest_net_G.pth"
    torch.save({key: torch.zeros(shape, dtype=torch.long if key.endswith("tracked") else torch.float32) for key, shape in shapes.items()}, path)
    generator, config = convert(path, direction="BtoA")
    assert count_parameters(generator) == 54_413_955
    assert (config.unet_depth, config.crop_size, config.ngf, config.norm, config.direction) == (8, 256, 64, "batch", "BtoA")


@pytest.mark.parametrize(
    ("num_downs", "norm", "channels", "prefix"),
    [(8, "batch", (3, 3), "module."), (7, "instance", (3, 3), ""), (7, "batch", (1, 2), "")],
    ids=["unet_256-batch-DataParallel", "unet_128-instance", "unet_128-colorization"],
)
def test_imported_generator_computes_what_the_reference_computes(tmp_path, num_downs, norm, channels, prefix, invoke):
    reference = randomised(ReferenceUnet(*channels, num_downs=num_downs, ngf=4, norm=norm))
    path = tmp_path / "latest_net_G.pth"
    torch.save({prefix + key: value for key, value in reference.state_dict().items()}, path)
    result = invoke(import_app, str(path), "--output_dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert f"{num_downs}-level U-Net" in result.stdout
    payload = ckpt.load(tmp_path / "run" / ckpt.GENERATOR_NAME)
    assert payload["architecture"]["norm"] == norm and payload["config"]["lab_colorization"] == (channels == (1, 2))
    generator, _ = generator_from_checkpoint(tmp_path / "run")
    x = torch.rand(2, channels[0], 2**num_downs, 2**num_downs) * 2 - 1
    with torch.no_grad():
        expected = reference(x.clone())  # the reference's in-place ReLUs must not touch x
        got = generator.eval()(x)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_imported_run_translates(tmp_path, invoke):
    path = tmp_path / "latest_net_G.pth"
    torch.save(randomised(ReferenceUnet(1, 2, num_downs=7, ngf=4)).state_dict(), path)
    assert invoke(import_app, str(path), "-o", str(tmp_path / "run"), "--lab_colorization").returncode == 0
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    result = invoke(translate_app, "-c", str(tmp_path / "run"), "-i", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "photo.png").size == (70, 50)


def small_reference_state(**options) -> dict:
    return ReferenceUnet(num_downs=5, ngf=2, **options).state_dict()


@pytest.mark.parametrize(
    ("make", "options", "fragment"),
    [
        (lambda: {"model.1.weight": torch.zeros(64, 3, 7, 7)}, {}, "not a pytorch-CycleGAN-and-pix2pix U-Net"),
        (lambda: {**small_reference_state(), "model.model.1.model.1.weight": torch.zeros(9, 2, 4, 4)}, {}, "model.model.1.model.1.weight has shape (9, 2, 4, 4)"),
        (lambda: {**small_reference_state(), "extra.weight": torch.zeros(1)}, {}, "unexpected keys"),
        (lambda: small_reference_state(), {"lab_colorization": True}, "not a colorization model"),
        (lambda: ReferenceUnet(1, 2, num_downs=5, ngf=2).state_dict(), {"direction": "BtoA"}, "Lab colorization AtoB, not BtoA"),
        (lambda: ReferenceUnet(1, 3, num_downs=5, ngf=2).state_dict(), {}, "1 -> 3 channels"),
        (lambda: {"step": 3}, {}, "not a generator state dict"),
    ],
    ids=["resnet", "wrong shape", "extra key", "not colorization", "colorization direction", "channels", "not tensors"],
)
def test_wrong_files_are_refused_with_a_reason(tmp_path, make, options, fragment):
    path = tmp_path / "latest_net_G.pth"
    torch.save(make(), path)
    with pytest.raises(UserError) as error:
        convert(path, **options)
    assert fragment in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("bad", ["text", "project", "exists"])
def test_bad_import_is_one_error_line(tmp_path, bad, assert_user_error, invoke):
    path = tmp_path / "latest_net_G.pth"
    output = tmp_path / "run"
    torch.save(small_reference_state(), path)
    if bad == "text":
        path.write_text("not a checkpoint")
        fragment = "not a readable PyTorch state dict"
    elif bad == "project":
        ckpt.save({"generator": {}}, path)
        fragment = "already a pix2pix-pipeline checkpoint"
    else:
        output.mkdir()
        ckpt.save({"generator": {}}, output / ckpt.GENERATOR_NAME)
        fragment = "already holds generator.pt"
    assert_user_error(invoke(import_app, str(path), "--output-dir", str(output)), fragment)
