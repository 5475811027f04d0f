"""Batches made ahead of the step that needs them, in a background thread.

A batch is a pure function of its epoch's plan and its index, and making it draws nothing from
torch's global generator (a hint model's hints come from per-item generators), so a thread can
slice, flip, scale and (on CUDA) pin batch k+1 while step k runs: the steps see the same batches
in the same order, and training stays bit-identical to making each batch just before its step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, Self

import torch

AHEAD = 2  # batches made or being made ahead: one to take at once, one in the making


class Batches(Protocol):
    """What the feed needs of a model (``pix2pix.train.loop.Trainable``)."""

    device: torch.device

    def epoch_plan(self, epoch: int) -> Any: ...

    def batch(self, plan: Any, index: int) -> tuple[torch.Tensor, ...]: ...


class BatchFeed:
    """The next ``steps`` batches from batch ``index`` of ``epoch`` on, each epoch ``steps_per_epoch``
    batches long, made ``AHEAD`` at a time by one background thread. A context manager: leaving it
    (at the end, or on any exception, early stop or interruption) cancels what is not started and
    joins the thread. ``waited``: the seconds ``next`` spent blocked on a batch not ready yet."""

    def __init__(self, model: Batches, epoch: int, index: int, steps_per_epoch: int, steps: int):
        self.model, self.waited = model, 0.0
        self._positions = _positions(epoch, index, steps_per_epoch, steps)
        self._plans: dict[int, Any] = {}
        self._pending: deque[Future] = deque()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-feed")

    def __enter__(self) -> Self:
        self._submit()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def next(self) -> tuple[torch.Tensor, ...]:
        """The next batch; an error in making it is raised here, as ``model.batch`` raised it."""
        future = self._pending.popleft()
        self._submit()
        # Measured where the training thread blocks, not around the step: on CUDA the step only
        # queues its kernels, so the GPU idles for want of data exactly while this thread waits here.
        started = time.perf_counter()
        try:
            return future.result()
        finally:
            self.waited += time.perf_counter() - started

    def _submit(self) -> None:
        while len(self._pending) < AHEAD and (position := next(self._positions, None)) is not None:
            epoch, index = position
            if epoch not in self._plans:  # plans are pure: made here, in order, one epoch ahead at most
                self._plans = {epoch: self.model.epoch_plan(epoch)}
            self._pending.append(self._pool.submit(self._make, self._plans[epoch], index))

    def _make(self, plan: Any, index: int) -> tuple[torch.Tensor, ...]:
        batch = self.model.batch(plan, index)
        if self.model.device.type == "cuda":  # so the step's copy to the GPU is asynchronous and pins nothing itself
            batch = tuple(tensor.pin_memory() for tensor in batch)
        return batch


def _positions(epoch: int, index: int, steps_per_epoch: int, steps: int) -> Iterator[tuple[int, int]]:
    """(epoch, batch index) of each of the next ``steps`` steps. A start past an epoch's last batch (a
    checkpoint written after it, before the loop moved on to the next epoch) is the next epoch's first."""
    if index >= steps_per_epoch:
        epoch, index = epoch + 1, 0
    for _ in range(steps):
        yield epoch, index
        epoch, index = (epoch + 1, 0) if index + 1 == steps_per_epoch else (epoch, index + 1)
