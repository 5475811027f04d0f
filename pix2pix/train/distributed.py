"""Data-parallel training under ``torchrun``: one process per GPU (or CPU slot), DDP averages gradients.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address. Without them (a plain
``pix2pix train``) there is a single process and every helper here is a no-op, so single-process
training is unchanged. Under torchrun the processes join a group even when there is one
(``--nproc_per_node 1``): the DDP and NCCL code a cluster job runs then runs on one GPU too.
Each process takes ``batch_size`` images per step from its shard of the epoch plan, so the
global batch is ``batch_size * world_size``. All processes seed alike and draw the same random
numbers in step, so rank 0's RNG state in the checkpoint resumes every rank exactly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False  # started by torchrun: in a process group, networks wrapped in DDP

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, losses.csv and logs; the others only compute."""
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module whose backward averages gradients over all processes (itself when alone)."""
        if not self.distributed:
            return module
        device = next(module.parameters()).device
        return nn.parallel.DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)

    def step_summary(self, losses: dict[str, torch.Tensor], stop: bool) -> tuple[dict[str, float], bool]:
        """Losses averaged over the processes, and whether any of them was told to stop.

        Every rank has to stop at the same step: one left alone in a collective would hang.
        """
        if not self.distributed:
            return {name: float(value) for name, value in losses.items()}, stop
        device = next(iter(losses.values())).device
        values = torch.stack([*losses.values(), torch.tensor(float(stop), device=device)])
        dist.all_reduce(values)
        means = (values[:-1] / self.world_size).tolist()
        return dict(zip(losses, means)), bool(values[-1] > 0)

    @property
    def backend(self) -> str | None:
        """The process group's backend (nccl, gloo), None outside one."""
        return dist.get_backend() if self.distributed else None

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def from_environment() -> Group:
    """The group torchrun describes in the environment (a single process without it)."""
    environment = os.environ
    launched = {"WORLD_SIZE", "MASTER_ADDR"} <= environment.keys()
    return Group(int(environment.get("RANK", 0)), int(environment.get("WORLD_SIZE", 1)), int(environment.get("LOCAL_RANK", 0)), launched)


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[tuple[Group, torch.device]]:
    """Join the process group for one training run, on this process's own GPU, and leave it after.

    gloo on CPU, nccl on GPU; every process takes the GPU of its local rank.
    """
    group = from_environment()
    if not group.distributed:
        yield group, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield group, device
    finally:
        if owned:
            dist.destroy_process_group()
