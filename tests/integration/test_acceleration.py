"""Device speed options: CPU defaults leave the maths alone; AMP, channels_last and compile run and resume.

CI has no GPU, so the CUDA defaults are checked by resolving them for a CUDA device without
running on one, and the AMP paths run on the CPU's autocast (same code, other kernels).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.nn.device import Acceleration, resolve
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import Pix2Pix, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, make_pairs):
    return make_pairs(tmp_path_factory.mktemp("accel") / "pairs", count=4)


def test_cpu_defaults_change_nothing():
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark)
    assert resolve(CPU) == Acceleration(CPU, amp_dtype=None, channels_last=False, compile=False)
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark) == before
    explicit = resolve(CPU, amp="bf16", channels_last="on", compile=True)
    assert (explicit.amp_dtype, explicit.memory_format, explicit.compile) == (torch.bfloat16, torch.channels_last, True)
    assert not explicit.needs_grad_scaler and resolve(CPU, amp="fp16").needs_grad_scaler


def test_cuda_defaults_turn_everything_on():
    """Resolved for a CUDA device (nothing runs on it): AMP, TF32, channels_last and cuDNN autotuning on."""
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark)
    try:
        accel = resolve(torch.device("cuda"))
        assert accel.amp_dtype in (torch.bfloat16, torch.float16) and accel.channels_last and not accel.compile
        assert torch.backends.cuda.matmul.fp32_precision == "tf32" and torch.backends.cudnn.conv.fp32_precision == "tf32"
        assert torch.backends.cudnn.benchmark
        off = resolve(torch.device("cuda"), amp="off", tf32="off", channels_last="off", cudnn_benchmark="off")
        assert off == Acceleration(torch.device("cuda"))
        assert torch.backends.cuda.matmul.fp32_precision == "ieee" and not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark = saved


@pytest.mark.parametrize("option", [{"amp": "fp8"}, {"tf32": "yes"}, {"channels_last": "1"}, {"cudnn_benchmark": "maybe"}, {"cpu_kernels": "fast"}])
def test_unknown_values_are_user_errors(option):
    with pytest.raises(UserError, match=next(iter(option))):
        resolve(CPU, **option)


def test_bad_amp_option_is_one_line_exit_2(tmp_path, pairs, assert_user_error, run_cli, tiny_args):
    result = run_cli("stages.train", "--input_dir", str(pairs), "--output_dir", str(tmp_path / "run"), *tiny_args, "--amp", "fp8")
    assert_user_error(result, "amp")
    assert not (tmp_path / "run").exists()


def test_channels_last_step_matches_contiguous(pairs, tiny_config, training_batches):
    config = TrainConfig(dropout=0.0, **tiny_config)  # dropout masks are drawn in memory order, so they differ
    inputs, targets = training_batches(pairs, config, batch_size=2)[0]
    losses = {}
    for name, accel in (("plain", Acceleration(CPU)), ("nhwc", Acceleration(CPU, channels_last=True))):
        torch.manual_seed(0)
        model = Pix2Pix(config, CPU, acceleration=accel)
        losses[name] = [model.train_step(inputs, targets) for _ in range(3)]
    for plain, nhwc in zip(losses["plain"], losses["nhwc"]):
        for key in plain:
            assert float(nhwc[key]) == pytest.approx(float(plain[key]), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_learns_and_resumes_exactly(tmp_path, pairs, amp, tiny_config):
    """AMP on the CPU's autocast: finite losses, a saved loss scale for fp16, and an interrupted run resumes to the bit."""
    paths = list_images(pairs)
    config = TrainConfig(max_steps=6, amp=amp, **tiny_config)
    train(config, paths, tmp_path / "whole")
    train(config.model_copy(update={"max_steps": 3}), paths, tmp_path / "split")
    train(config, paths, tmp_path / "split")
    whole, resumed = (ckpt.load(tmp_path / name / ckpt.CHECKPOINT_NAME) for name in ("whole", "split"))
    for key in ("generator", "discriminator"):
        assert all(torch.equal(whole[key][k], resumed[key][k]) for k in whole[key])
        assert all(torch.isfinite(v).all() for v in whole[key].values() if v.is_floating_point())
    assert whole["grad_scaler"] == resumed["grad_scaler"]
    assert bool(whole["grad_scaler"]) == (amp == "fp16")  # bf16 needs no loss scaling
    losses = np.loadtxt(tmp_path / "whole" / "losses.csv", delimiter=",", skiprows=1, usecols=(2, 3, 4, 5), ndmin=2)
    assert np.isfinite(losses).all()


def test_resume_may_switch_amp(tmp_path, pairs, tiny_config):
    """AMP is a speed setting, not the model: a run started in fp16 continues in fp32."""
    paths = list_images(pairs)
    train(TrainConfig(max_steps=2, amp="fp16", **tiny_config), paths, tmp_path / "run")
    summary = train(TrainConfig(max_steps=4, amp="off", **tiny_config), paths, tmp_path / "run")
    assert summary["steps"] == 4 and ckpt.load(tmp_path / "run" / ckpt.CHECKPOINT_NAME)["grad_scaler"] == {}


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, pairs, tiny_config):
    run = tmp_path_factory.mktemp("accel-run") / "run"
    train(TrainConfig(max_steps=2, **tiny_config), list_images(pairs), run)
    return run / ckpt.GENERATOR_NAME


def evaluated_outputs(generator_file, pairs, folder, accel, mode="eval"):
    generator, _ = generator_from_checkpoint(generator_file)
    evaluate(generator, Task(), list_images(pairs), folder, eval_mode=mode, acceleration=accel)
    return [np.asarray(Image.open(path)).astype(int) for path in sorted((folder / "images").glob("*-outputs.png"))]


def test_evaluate_with_bf16_and_channels_last_stays_close(tmp_path, generator_file, pairs):
    plain = evaluated_outputs(generator_file, pairs, tmp_path / "plain", Acceleration(CPU))
    fast = evaluated_outputs(generator_file, pairs, tmp_path / "fast", resolve(CPU, amp="bf16", channels_last="on"))
    assert len(plain) == len(fast) == 4
    for a, b in zip(plain, fast):
        assert np.abs(a - b).mean() < 3  # bf16 keeps 8 bits of mantissa: a few levels of 255 at most


def test_compiled_generator_gives_the_same_images(tmp_path, generator_file, pairs):
    plain = evaluated_outputs(generator_file, pairs, tmp_path / "plain", Acceleration(CPU), mode="train")
    compiled = evaluated_outputs(generator_file, pairs, tmp_path / "compiled", resolve(CPU, compile=True), mode="train")
    for a, b in zip(plain, compiled):
        assert np.abs(a - b).max() <= 1


def test_translate_stage_accepts_the_device_options(tmp_path, generator_file, run_cli):
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)).save(image)
    result = run_cli(
        "stages.translate", "-c", str(generator_file), "-i", str(image), "-o", str(tmp_path / "out"),
        "--device", "cpu", "--amp", "bf16", "--channels_last", "on", "--tf32", "off", "--cudnn_benchmark", "off",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "in.png").size == (24, 40)
