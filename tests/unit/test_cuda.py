"""The GPU path on a real GPU: AMP, channels_last, compile, pinned copies, training and resume, evaluate, torchrun.

CI has no GPU: every test here is marked ``cuda`` and skipped without one (the CPU side of the
same code is in tests/integration/test_acceleration.py and test_ddp.py). ``benchmarks/gpu.py``
runs them on a CUDA machine (``pytest -m cuda tests/unit``).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.nn.device import Acceleration, resolve
from pix2pix.nn.networks import build_generator, init_weights
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import Pix2Pix, train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")


@pytest.fixture
def cuda_config(tiny_config) -> dict:
    """The tiny model on the GPU, without dropout: steps compared across settings draw no masks."""
    return {**tiny_config, "device": "cuda", "dropout": 0.0}


@pytest.fixture(autouse=True)
def process_settings():
    """``resolve`` sets TF32 and cuDNN autotuning for the whole process: each test gets them back as they were."""
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark)
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark = saved


def losses_of_steps(config: TrainConfig, accel: Acceleration, batches: list) -> list[dict[str, float]]:
    torch.manual_seed(0)
    model = Pix2Pix(config, CUDA, acceleration=accel)
    return [{name: float(value) for name, value in model.train_step(*batch).items()} for batch in batches]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_stay_close_to_fp32(pairs, cuda_config, training_batches, amp):
    """The first step's losses from the initial weights (D's, and G's L1) agree to AMP's precision;
    later ones stay finite and near.

    fp16's loss scaler may skip a first update whose scaled gradients overflow: G_GAN, measured
    after D's update, and every later step may then differ more.
    """
    config = TrainConfig(**cuda_config)
    batches = training_batches(pairs, config, count=4)
    exact = losses_of_steps(config, resolve(CUDA, amp="off", tf32="off"), batches)
    mixed = losses_of_steps(config, resolve(CUDA, amp=amp), batches)
    assert resolve(CUDA, amp=amp).needs_grad_scaler == (amp == "fp16")
    for name in ("D_real", "D_fake", "G_L1"):
        assert mixed[0][name] == pytest.approx(exact[0][name], rel=0.05, abs=0.02), name
    assert all(np.isfinite(value) for losses in mixed for value in losses.values())
    assert mixed[-1]["G_L1"] == pytest.approx(exact[-1]["G_L1"], rel=0.2)


def test_channels_last_gives_the_outputs_of_contiguous(pairs, cuda_config, training_batches):
    """In fp32 without TF32: the generator's outputs, and three training steps' losses."""
    resolve(CUDA, amp="off", tf32="off")
    config = TrainConfig(**cuda_config)
    torch.manual_seed(0)
    generator = build_generator(config.architecture())
    init_weights(generator)
    batch = training_batches(pairs, config, batch_size=2)[0]
    outputs = {}
    for name, accel in (("plain", Acceleration(CUDA)), ("nhwc", Acceleration(CUDA, channels_last=True))):
        network = accel.prepare(copy.deepcopy(generator)).eval()
        with torch.no_grad():
            outputs[name] = network(accel.to_device(batch[0])).cpu()
    torch.testing.assert_close(outputs["nhwc"], outputs["plain"], rtol=1e-4, atol=1e-4)
    plain = losses_of_steps(config, Acceleration(CUDA), [batch] * 3)
    nhwc = losses_of_steps(config, Acceleration(CUDA, channels_last=True), [batch] * 3)
    for before, after in zip(plain, nhwc):
        for name in before:
            assert after[name] == pytest.approx(before[name], rel=1e-3, abs=1e-4), name


def test_compiled_model_trains(pairs, cuda_config, training_batches):
    config = TrainConfig(**cuda_config)
    losses = losses_of_steps(config, resolve(CUDA, compile=True), training_batches(pairs, config, count=2, batch_size=2))
    assert len(losses) == 2 and all(np.isfinite(value) for step in losses for value in step.values())


@pytest.mark.parametrize("channels_last", [False, True])
def test_to_device_copies_through_pinned_memory(channels_last):
    batch = torch.rand(2, 3, 8, 8)
    moved = Acceleration(CUDA, channels_last=channels_last).to_device(batch)
    assert moved.is_cuda and torch.equal(moved.cpu(), batch)
    assert moved.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert not batch.is_pinned()  # the pinned copy is a staging buffer: the caller's batch stays as it was


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_on_cuda_resumes(tmp_path, pairs, tiny_config, amp):
    """4 steps in one go and 2 + 2 from the checkpoint both finish, finite, with fp16's loss scale saved.

    Not compared to the bit: cuDNN autotuning picks kernels by timing.
    """
    config = TrainConfig(max_steps=4, amp=amp, log_freq=1, **{**tiny_config, "device": "cuda"})
    paths = list_images(pairs)
    train(config, paths, tmp_path / "whole")
    train(config.model_copy(update={"max_steps": 2}), paths, tmp_path / "split")
    summary = train(config, paths, tmp_path / "split")
    assert summary["steps"] == 4 and "already_complete" not in summary
    for name in ("whole", "split"):
        state = ckpt.load(tmp_path / name / ckpt.CHECKPOINT_NAME)
        assert state["step"] == 4 and bool(state["grad_scaler"]) == (amp == "fp16")
        for key in ("generator", "discriminator"):
            assert all(torch.isfinite(value).all() for value in state[key].values() if value.is_floating_point()), key
    losses = np.loadtxt(tmp_path / "split" / "losses.csv", delimiter=",", skiprows=1, usecols=(0, 2, 3, 4, 5), ndmin=2)
    assert list(losses[:, 0]) == [1, 2, 3, 4] and np.isfinite(losses).all()


def test_evaluate_on_cuda_matches_the_cpu(tmp_path, pairs, tiny_config):
    """Eval mode (no dropout): the GPU's images, in its default bf16/fp16 and channels_last, within a few levels of the CPU's."""
    train(TrainConfig(max_steps=2, **tiny_config), list_images(pairs), tmp_path / "run")
    images = {}
    for device in ("cpu", "cuda"):
        generator, _ = generator_from_checkpoint(tmp_path / "run" / ckpt.GENERATOR_NAME, device)
        folder = tmp_path / device
        evaluate(generator, Task(), list_images(pairs), folder, eval_mode="eval", acceleration=resolve(torch.device(device)))
        images[device] = [np.asarray(Image.open(path)).astype(int) for path in sorted((folder / "images").glob("*-outputs.png"))]
    assert len(images["cuda"]) == len(images["cpu"]) == 4
    for gpu, cpu in zip(images["cuda"], images["cpu"]):
        assert np.abs(gpu - cpu).mean() < 3


def test_torchrun_one_process_trains_on_cuda(tmp_path, pairs, repo_root, tiny_args):
    """``torchrun --nproc_per_node 1``: the process takes the GPU of its local rank and trains to a checkpoint.

    At world size 1 no process group is joined (pix2pix.train.distributed.session), so NCCL and
    DDP themselves stay unexercised on a single GPU.
    """
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
        "-m", "stages.train", "--input_dir", str(pairs), "--output_dir", str(tmp_path / "run"), *tiny_args,
        "--device", "cuda", "--max_steps", "3",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    finished = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    state = ckpt.load(tmp_path / "run" / ckpt.CHECKPOINT_NAME)
    assert state["step"] == 3 and state.get("world_size", 1) == 1
