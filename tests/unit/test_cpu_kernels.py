"""The hand-made CPU convolutions as a backend: swapped into built networks, same function, same state, switchable."""

from __future__ import annotations

import collections

import onnx
import pytest
import torch
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.export import export_generator
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.infer.translate import Translator
from pix2pix.nn import gemm_conv, winograd
from pix2pix.nn.cpu_kernels import use_cpu_kernels
from pix2pix.nn.device import CPU_KERNELS_VARIABLE, Acceleration
from pix2pix.nn.gemm_conv import DownConv, ScoreConv, UpConv
from pix2pix.nn.networks import (
    PatchDiscriminator,
    UNetGenerator,
    build_generator,
    init_weights,
    unet_depth,
)
from pix2pix.nn.winograd import PatchConv
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import Pix2Pix

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:DeprecationWarning")

CPU = torch.device("cpu")
TORCH_LAYERS = {nn.Conv2d, nn.ConvTranspose2d}
FAST_GENERATOR_LAYERS = {DownConv, UpConv}


@pytest.fixture(autouse=True)
def no_switch_in_the_environment(monkeypatch):
    monkeypatch.delenv(CPU_KERNELS_VARIABLE, raising=False)


def convolution_classes(network: nn.Module) -> list[type]:
    return [type(layer) for layer in network.modules() if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))]


def test_networks_declare_torch_layers_and_the_swap_picks_the_measured_ones():
    generator, discriminator = UNetGenerator(depth=5, ngf=8), PatchDiscriminator(ndf=8)
    assert set(convolution_classes(generator)) == TORCH_LAYERS and set(convolution_classes(discriminator)) == {nn.Conv2d}
    use_cpu_kernels(generator)
    use_cpu_kernels(use_cpu_kernels(discriminator))  # a second swap changes nothing
    assert convolution_classes(generator) == [DownConv] * 5 + [UpConv] * 5
    assert convolution_classes(discriminator) == [nn.Conv2d] * 3 + [PatchConv, ScoreConv]  # stride 2 stays torch's


def test_the_swap_keeps_the_layers_parameters_and_state_dict():
    """Only classes change: an optimiser, a checkpoint or DDP made before the swap still fits."""
    model = nn.ModuleDict({"g": UNetGenerator(depth=5, ngf=8), "d": PatchDiscriminator(ndf=8)})
    layers, parameters, state = list(model.modules()), list(model.parameters()), model.state_dict()
    use_cpu_kernels(model)
    assert all(a is b for a, b in zip(model.modules(), layers, strict=True))
    assert all(a is b for a, b in zip(model.parameters(), parameters, strict=True))
    swapped = model.state_dict()
    assert list(swapped) == list(state)
    assert all(swapped[key].data_ptr() == state[key].data_ptr() and torch.equal(swapped[key], state[key]) for key in state)


# Where each fast form is called, to count its calls.
FAST_FORMS = {
    "down": (gemm_conv._DownMatmul, "apply"),
    "up": (gemm_conv._UpMatmul, "apply"),
    "winograd": (winograd._WinogradConv, "apply"),
    "tap products": (gemm_conv, "score_conv"),
}


@pytest.fixture
def fast_forms_taken(monkeypatch) -> collections.Counter:
    calls = collections.Counter()
    for label, (owner, name) in FAST_FORMS.items():
        form = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *args, form=form, label=label: calls.update([label]) or form(*args))
    return calls


@pytest.mark.parametrize(
    ("network", "size", "forms"),
    [
        ("generator", 32, {"down", "up"}),  # down to 1x1: the three innermost layers each way in matrix form
        ("generator", 64, {"down", "up"}),
        ("discriminator", 64, set()),  # too small for Winograd and the tap products: torch's ops
        ("discriminator", 128, {"winograd", "tap products"}),  # 2 x 15 x 15 and 2 x 14 x 14 positions
    ],
)
def test_same_outputs_and_gradients_with_the_kernels_on_and_off(network, size, forms, fast_forms_taken):
    """One network run before and after the swap: scores, parameter and input gradients agree to float rounding."""
    torch.manual_seed(0)
    model = UNetGenerator(depth=unet_depth(size), ngf=8, dropout=0.0) if network == "generator" else PatchDiscriminator(ndf=8)
    init_weights(model)
    inputs = [torch.randn(2, 3, size, size, requires_grad=True) for _ in range(1 if network == "generator" else 2)]

    def output_and_gradients() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        output = model(*inputs)
        gradients = torch.autograd.grad(output.square().mean(), [*model.parameters(), *inputs])
        return [output.detach(), *gradients]

    plain = output_and_gradients()
    assert not fast_forms_taken
    use_cpu_kernels(model)
    fast = output_and_gradients()
    assert set(fast_forms_taken) == forms
    for mine, torch_s in zip(fast, plain, strict=True):
        torch.testing.assert_close(mine, torch_s, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    ("device", "setting", "variable", "expected"),
    [
        ("cpu", "auto", None, True),
        ("cuda", "auto", None, False),
        ("cpu", "auto", "off", False),
        ("cuda", "auto", "on", True),
        ("cpu", "auto", "auto", True),
        ("cpu", "off", "on", False),  # a setting other than auto wins over the variable
        ("cuda", "on", "off", True),
    ],
)
def test_the_setting_decides_and_auto_defers_to_the_environment_variable(monkeypatch, device, setting, variable, expected):
    if variable:
        monkeypatch.setenv(CPU_KERNELS_VARIABLE, variable)
    assert Acceleration(torch.device(device), cpu_kernels=setting).uses_cpu_kernels is expected


def test_a_bad_environment_variable_is_a_user_error(monkeypatch):
    monkeypatch.setenv(CPU_KERNELS_VARIABLE, "1")
    with pytest.raises(UserError, match=CPU_KERNELS_VARIABLE):
        Acceleration(CPU).prepare(UNetGenerator(depth=5, ngf=8))


@pytest.mark.parametrize(
    ("variable", "acceleration", "expected"),
    [(None, None, FAST_GENERATOR_LAYERS), ("off", None, TORCH_LAYERS), (None, Acceleration(CPU, cpu_kernels="off"), TORCH_LAYERS)],
)
def test_training_networks_follow_the_switch(monkeypatch, variable, acceleration, expected, tiny_config):
    """``Pix2Pix`` prepares its networks through its ``Acceleration``: the kernels are on by default on the CPU."""
    if variable:
        monkeypatch.setenv(CPU_KERNELS_VARIABLE, variable)
    model = Pix2Pix(TrainConfig(**tiny_config), CPU, acceleration=acceleration)
    assert set(convolution_classes(model.generator)) == expected
    assert (PatchConv in convolution_classes(model.discriminator)) == (expected == FAST_GENERATOR_LAYERS)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, tiny_config):
    config = TrainConfig(**tiny_config)
    torch.manual_seed(0)
    generator = build_generator(config.architecture())
    init_weights(generator)
    path = tmp_path_factory.mktemp("kernels") / ckpt.GENERATOR_NAME
    ckpt.save({"config": config.model_dump(mode="json"), "architecture": config.architecture(), "generator": generator.state_dict()}, path)
    return path


@pytest.mark.parametrize(("variable", "expected"), [(None, FAST_GENERATOR_LAYERS), ("off", TORCH_LAYERS)])
def test_translate_and_evaluate_follow_the_switch(monkeypatch, tmp_path, generator_file, variable, expected, make_pairs):
    if variable:
        monkeypatch.setenv(CPU_KERNELS_VARIABLE, variable)
    assert set(convolution_classes(Translator.from_checkpoint(generator_file).generator)) == expected
    generator, _ = generator_from_checkpoint(generator_file)
    evaluate(generator, Task(), list_images(make_pairs(tmp_path / "pairs", count=1)), tmp_path / "eval")
    assert set(convolution_classes(generator)) == expected


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_swapped_generator_exports_torch_s_convolutions(tmp_path, fmt, tiny_config):
    """Tracing takes torch's ops, so an exported file never holds the matrix forms (at 32 px they would run)."""
    config = TrainConfig(**tiny_config)
    generator = use_cpu_kernels(build_generator(config.architecture()))
    path = tmp_path / f"generator.{fmt}"
    export_generator(generator, config.model_dump(mode="json"), path, fmt)
    if fmt == "onnx":
        operators = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert {"Conv", "ConvTranspose"} <= operators and not operators & {"MatMul", "Col2Im", "Gemm"}
    else:
        graph = str(torch.jit.load(str(path)).inlined_graph)
        assert "aten::_convolution" in graph and "im2col" not in graph and "unfold" not in graph and "matmul" not in graph
