"""Batches made ahead in a background thread (issue 21, item 3): the same batches in the same order as
made in line, exact resumption mid-epoch, no thread left however training ends, errors raised as
``batch()`` raised them, and the share of time spent waiting for data."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Self

import pytest
import torch

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.train import loop, pix2pix_model
from pix2pix.train.config import CGANConfig, TrainConfig
from pix2pix.train.feeding import BatchFeed
from pix2pix.train.loop import LOSSES_NAME, Callbacks, TrainingDiverged, TrainingInterrupted, Validation, fit
from tests.support.trainable import OneWeight


def feed_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("batch-feed")]


class MadeInLine:
    """The loop before the feed: each batch made in the training thread when its step asks for it."""

    def __init__(self, model, epoch: int, index: int, steps_per_epoch: int, steps: int):
        self.model, self.epoch, self.index, self.steps_per_epoch, self.waited = model, epoch, index, steps_per_epoch, 0.0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def next(self) -> tuple[torch.Tensor, ...]:
        if self.index == self.steps_per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        self.index += 1
        return self.model.batch(self.model.epoch_plan(self.epoch), self.index - 1)


@pytest.fixture
def paths(tmp_path, make_pairs) -> list[Path]:
    return list_images(make_pairs(tmp_path / "pairs", count=5))


@pytest.fixture
def config(tiny_config) -> TrainConfig:
    """Batches of 2 over 5 images: 3 steps an epoch, the last one short; dropout (64 px) draws from torch's generator."""
    return TrainConfig(**{**tiny_config, "crop_size": 64, "load_size": 72, "batch_size": 2, "max_steps": 7, "seed": 3, "log_freq": 1})


def run_files(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in (ckpt.GENERATOR_NAME, LOSSES_NAME)}


class Positions:
    """A model whose batch is (epoch, index) and whose plan is its epoch: shows which batch the feed makes."""

    device = torch.device("cpu")

    def epoch_plan(self, epoch: int) -> int:
        return epoch

    def batch(self, plan: int, index: int) -> tuple[torch.Tensor]:
        return (torch.tensor([plan, index]),)


def test_the_feed_walks_epochs_from_a_mid_epoch_start():
    with BatchFeed(Positions(), epoch=1, index=2, steps_per_epoch=3, steps=5) as feed:
        made = [feed.next()[0].tolist() for _ in range(5)]
    assert made == [[1, 2], [2, 0], [2, 1], [2, 2], [3, 0]]
    assert not feed_threads()


def test_a_feed_started_past_an_epochs_last_batch_starts_the_next_epoch():
    """A checkpoint written after an epoch's last batch holds that epoch and batch_index == steps_per_epoch."""
    with BatchFeed(Positions(), epoch=1, index=3, steps_per_epoch=3, steps=2) as feed:
        made = [feed.next()[0].tolist() for _ in range(2)]
    assert made == [[2, 0], [2, 1]]


def test_training_ahead_is_byte_identical_to_batches_made_in_line(tmp_path, paths, config, monkeypatch):
    pix2pix_model.train(config, paths, tmp_path / "ahead")
    monkeypatch.setattr(loop, "BatchFeed", MadeInLine)
    pix2pix_model.train(config, paths, tmp_path / "in_line")
    assert run_files(tmp_path / "ahead") == run_files(tmp_path / "in_line")


@pytest.mark.parametrize(
    ("signalled_at", "checkpoint"),
    [(3, (4, 1, 1)), (2, (3, 0, 3))],  # mid-epoch; after an epoch's last batch, before the loop moved to the next epoch
    ids=["mid-epoch", "epoch-end"],
)
def test_resumed_run_equals_uninterrupted_and_leaves_no_thread(tmp_path, paths, config, signalled_at, checkpoint):
    """The signal is seen at the next step, which the checkpoint then holds: (step, epoch, batch_index)."""
    pix2pix_model.train(config, paths, tmp_path / "whole")
    interrupt = Callbacks(on_step=lambda report: os.kill(os.getpid(), signal.SIGTERM) if report.step == signalled_at else None)
    with pytest.raises(TrainingInterrupted):
        pix2pix_model.train(config, paths, tmp_path / "split", interrupt)
    assert not feed_threads()
    saved = ckpt.load(tmp_path / "split" / ckpt.CHECKPOINT_NAME)
    assert (saved["step"], saved["epoch"], saved["batch_index"]) == checkpoint
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pix2pix_model.train(config, paths, tmp_path / "split")
    assert not [str(w.message) for w in caught if "lr_scheduler" in str(w.message)]  # the schedule is stepped in order for the run
    assert run_files(tmp_path / "whole") == run_files(tmp_path / "split")


class Scripted(OneWeight):
    """A one-weight model: ``batch`` raises ``error`` at step ``fail_at`` (1-based), the loss is NaN from ``nan_at``;
    ``batch_seconds`` and ``step_seconds`` make its data or its steps slow."""

    def __init__(self, fail_at=None, error=None, nan_at=None, batch_seconds=0.0, step_seconds=0.0, validation=0.0):
        super().__init__()
        self.fail_at, self.error, self.nan_at, self.steps = fail_at, error, nan_at, 0
        self.batch_seconds, self.step_seconds, self.validation = batch_seconds, step_seconds, validation

    def epoch_plan(self, epoch: int) -> int:
        return epoch

    def batch(self, plan: int, index: int) -> tuple[torch.Tensor]:
        time.sleep(self.batch_seconds)
        if self.fail_at is not None and plan * 5 + index + 1 == self.fail_at:
            raise self.error
        return (torch.zeros(1),)

    def train_step(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        time.sleep(self.step_seconds)
        self.steps += 1
        return {"loss": torch.tensor(float("nan") if self.nan_at is not None and self.steps >= self.nan_at else 1.0)}

    def validate(self) -> dict[str, float]:
        return {"l1": self.validation}  # never better: stops early


def fit_scripted(model: Scripted, out: Path, **kwargs) -> dict:
    """10 steps: 2 epochs of 5 batches of 1."""
    return fit(lambda: model, CGANConfig(batch_size=1, epochs=2, save_freq=100, log_freq=1), out, items=5, epochs=2, resume_keys=(), **kwargs)


class BadCache(OSError):
    """An error type of the test's own, to show the loop raises it, not a wrapper."""


@pytest.mark.parametrize("error", [UserError("pairs.npy: not an image cache"), BadCache("pairs.npy: truncated")])
def test_an_error_in_batch_is_raised_in_the_loop_as_it_was(tmp_path, error):
    with pytest.raises(type(error)) as raised:
        fit_scripted(Scripted(fail_at=7, error=error), tmp_path / "run")
    assert raised.value is error
    assert (tmp_path / "run" / LOSSES_NAME).read_text().splitlines()[-1].startswith("6,")  # steps before it ran
    assert not feed_threads()


def test_no_thread_is_left_after_divergence_early_stop_or_the_end(tmp_path):
    with pytest.raises(TrainingDiverged):
        fit_scripted(Scripted(nan_at=3), tmp_path / "diverged")
    assert not feed_threads()
    summary = fit_scripted(Scripted(validation=1.0), tmp_path / "early", validation=Validation("l1", False, 1, early_stop=2))
    assert summary["stopped_early"] == 2 and summary["steps"] == 3
    assert not feed_threads()
    assert fit_scripted(Scripted(), tmp_path / "whole")["steps"] == 10
    assert not feed_threads()


def test_data_wait_share_is_the_time_spent_waiting_for_batches(tmp_path):
    """Slow data and instant steps: the loop waits most of the time; slow steps and instant data: hardly at all."""
    reported: list[float] = []
    slow_data = fit_scripted(Scripted(batch_seconds=0.05), tmp_path / "slow_data", callbacks=Callbacks(on_step=lambda r: reported.append(r.data_wait_share)))
    slow_steps = fit_scripted(Scripted(step_seconds=0.05), tmp_path / "slow_steps")
    assert len(reported) == 10 and all(0.0 <= share <= 1.0 for share in reported)
    assert reported[-1] == slow_data["data_wait_share"]
    assert slow_data["data_wait_share"] > 0.5 > slow_steps["data_wait_share"] >= 0.0
