"""Data-parallel training on CPU: two gloo processes on 127.0.0.1 match one process on the global batch."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import torch.multiprocessing as mp

from pix2pix import checkpoint as ckpt
from pix2pix.data.dataset import TrainingSet
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.train.config import TrainConfig
from pix2pix.train.distributed import session
from pix2pix.train.pix2pix_model import Pix2Pix, train


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_config(tiny_config) -> dict:
    """Instance norm and no dropout: nothing in a step depends on which images share a process."""
    return {**tiny_config, "norm": "instance", "dropout": 0.0}


def gradients_after_one_step(data: Path, batch_size: int, fields: dict, group_env: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Both networks' gradients after the first step of epoch 0 (the process's shard of it under DDP)."""
    os.environ.update(group_env or {})
    config = TrainConfig(batch_size=batch_size, **fields)
    with session(torch.device("cpu")) as (group, device):
        torch.manual_seed(config.seed)
        dataset = TrainingSet(list_images(data), config.task, config.load_size, config.crop_size)
        model = Pix2Pix(config, device, group)
        plan = dataset.epoch_plan(config.seed, 0).shard(group.rank, group.world_size)
        model.train_step(*dataset.batch(plan, 0, batch_size))
        return {
            f"{prefix}.{name}": parameter.grad.clone()
            for prefix, network in (("G", model.generator), ("D", model.discriminator))
            for name, parameter in network.named_parameters()
        }


def _ddp_worker(rank: int, world_size: int, port: int, data: Path, batch_size: int, fields: dict, out: Path) -> None:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)}
    gradients = gradients_after_one_step(data, batch_size, fields, env)
    torch.save(gradients, out / f"rank{rank}.pt")


def test_two_processes_average_to_the_single_process_gradient(tmp_path, ddp_config, make_pairs):
    data = make_pairs(tmp_path / "data", count=4)
    single = gradients_after_one_step(data, batch_size=4, fields=ddp_config)
    mp.spawn(_ddp_worker, args=(2, free_port(), data, 2, ddp_config, tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert single.keys() == ranks[0].keys() and single["G.encoder.0.0.weight"].abs().sum() > 0
    for name, expected in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name}: ranks disagree after all-reduce"
        # float rounding only: the two sides sum in other orders (batch 2 vs 4 picks other convolution paths)
        torch.testing.assert_close(ranks[0][name], expected, rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture
def torchrun(repo_root, tiny_args):
    def torchrun(data: Path, out: Path, *extra: str, processes: int = 2) -> subprocess.Popen:
        """`pix2pix train` as gloo processes (two by default) on 127.0.0.1, started by torchrun."""
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            "-m", "stages.train", "--input_dir", str(data), "--output_dir", str(out), *tiny_args, "--seed", "1", "--log_freq", "1", *extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
        return subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    return torchrun


def succeeds(process: subprocess.Popen) -> str:
    """The process's stderr, once it has ended well."""
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stderr


def test_one_torchrun_process_runs_ddp_and_trains_as_a_plain_run(tmp_path, make_pairs, torchrun, repo_root, tiny_args):
    """`--nproc_per_node 1`, as on a one-GPU node: the process joins a group and its networks go through DDP
    (all-reduce included), which changes nothing in a run of one process."""
    data = make_pairs(tmp_path / "data", count=5)
    stderr = succeeds(torchrun(data, tmp_path / "ddp", "--max_steps", "4", processes=1))
    assert "x 1 processes (DDP over gloo)" in stderr
    plain = [sys.executable, "-m", "stages.train", "--input_dir", str(data), "--output_dir", str(tmp_path / "plain"), *tiny_args, "--seed", "1", "--log_freq", "1", "--max_steps", "4"]
    run = subprocess.run(plain, cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "DDP" not in run.stderr, run.stderr[-3000:]
    ddp, alone = (ckpt.load(tmp_path / name / ckpt.GENERATOR_NAME)["generator"] for name in ("ddp", "plain"))
    assert all(torch.equal(ddp[name], alone[name]) for name in alone)


def test_resumed_ddp_run_equals_an_uninterrupted_one(tmp_path, make_pairs, torchrun):
    """8 steps in one go, or 4 and then 4 more from the checkpoint: the same weights; rank 0 logs once."""
    data = make_pairs(tmp_path / "data", count=5)  # shards of 3: rank 1's wraps round to the epoch's start
    succeeds(torchrun(data, tmp_path / "whole", "--max_steps", "8"))
    succeeds(torchrun(data, tmp_path / "split", "--max_steps", "4"))
    first = ckpt.load(tmp_path / "split" / ckpt.CHECKPOINT_NAME)
    assert first["step"] == 4 and first["world_size"] == 2
    succeeds(torchrun(data, tmp_path / "split", "--max_steps", "8"))

    whole, resumed = (ckpt.load(tmp_path / name / ckpt.CHECKPOINT_NAME) for name in ("whole", "split"))
    assert resumed["step"] == whole["step"] == 8 and whole["epoch"] == 2  # 3 steps per epoch
    for key in ("generator", "discriminator"):
        assert all(torch.equal(whole[key][name], resumed[key][name]) for name in whole[key]), key
    steps = [int(row["step"]) for row in csv.DictReader((tmp_path / "split" / "losses.csv").open())]
    assert steps == list(range(1, 9))


def test_sigterm_to_one_process_stops_all_at_one_checkpoint(tmp_path, make_pairs, torchrun):
    """Preemption may signal the ranks a step apart: they stop at the same step, and rank 0 saves it."""
    out = tmp_path / "run"
    process = torchrun(make_pairs(tmp_path / "data", count=5), out, "--max_steps", "100000")
    deadline = time.monotonic() + 120
    while not (out / "losses.csv").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    workers = psutil.Process(process.pid).children(recursive=True)
    next(worker for worker in workers if worker.environ().get("RANK") == "1").terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    saved = ckpt.load(out / ckpt.CHECKPOINT_NAME)
    assert 0 < saved["step"] < 100000 and f"SIGTERM: stopped at step {saved['step']}" in stderr


def test_a_ddp_checkpoint_is_not_resumed_by_another_number_of_processes(tmp_path, pairs, ddp_config):
    config = TrainConfig(max_steps=1, **ddp_config)
    train(config, list_images(pairs), tmp_path / "run")
    path = tmp_path / "run" / ckpt.CHECKPOINT_NAME
    ckpt.save({**ckpt.load(path), "world_size": 2}, path)
    with pytest.raises(UserError, match="started with 2 processes"):
        train(config.model_copy(update={"max_steps": 2}), list_images(pairs), tmp_path / "run")
