"""The pix2pix training loop: resumable to the bit, checkpointed atomically, preemption-safe.

Order per step is the reference's: G forward; D step on (input, fake) and (input, real) with
the loss halved; G step through a fresh D pass with D frozen, GAN + L1 loss.
Everything random (init, data order, crops, flips, dropout) comes from the seed and torch's
generator state, which the checkpoint carries, so an interrupted and resumed run ends with
exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.data.dataset import TrainingSet
from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text
from pix2pix.nn.device import Acceleration, resolve, select_device
from pix2pix.nn.losses import GANLoss
from pix2pix.nn.networks import (
    build_discriminator,
    build_generator,
    init_weights,
)
from pix2pix.task import Task
from pix2pix.train.config import ARCHITECTURE_KEYS, TrainConfig
from pix2pix.train.distributed import Group, session

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")
LOSS_COLUMNS = ("step", "epoch", *LOSS_NAMES, "lr")
RESUME_KEYS = (*ARCHITECTURE_KEYS, "seed", "batch_size", "load_size", "flip")  # a resumed run must keep these
EARLY_STEP_MIN_ELEMENTS = 2**20  # smaller ones wait for one fused step: stepping all singly cost 4 % at 64 px, from 2**20 2 %


class TrainingInterrupted(Exception):
    """A signal stopped training after a checkpoint was written; ``signum`` says which."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by signal {signum} at step {step}; checkpoint saved")
        self.signum, self.step = signum, step








class EarlySteps:
    """Adam steps each large parameter as soon as its gradient is whole, during the backward pass, and drops it.

    The G step's memory peak is G's gradients (218 MB for the 256 px U-Net) on top of the
    activations the backward pass still holds; stepped one by one as they are finished, they
    never all exist at once. Each parameter still gets one update from its whole gradient by the
    same optimiser, so the weights are bit-identical. Small parameters' gradients are set aside
    and handed back after the backward pass, for the usual ``optimizer.step()``. Not for a
    GradScaler (an fp16 step is skipped as a whole when any gradient overflows) nor DDP (its
    all-reduce writes the averaged gradients only when the backward pass ends). Measured on a
    2-core CPU: peak RSS at 256 px 1380 -> 1215 MB, at 64 px 880 -> 800 MB; the 256 px step as
    fast (paired 0.999x), the 64 px one 2 % slower (Adam's passes over 16-34 MB tensors evict
    the backward pass's cache).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter]):
        self.optimizer = optimizer
        self.active = False
        self.set_aside: dict[nn.Parameter, torch.Tensor] = {}
        for parameter in parameters:
            parameter.register_post_accumulate_grad_hook(self._gradient_ready)

    def _gradient_ready(self, parameter: nn.Parameter) -> None:
        if not self.active:
            return
        if parameter.numel() < EARLY_STEP_MIN_ELEMENTS:
            self.set_aside[parameter] = parameter.grad
        else:
            self.optimizer.step()  # this parameter's is the only gradient there is
        parameter.grad = None

    @contextlib.contextmanager
    def during_backward(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False
            for parameter, grad in self.set_aside.items():
                parameter.grad = grad
            self.set_aside.clear()


@dataclass
class StepReport:
    """What a callback sees after each step."""

    step: int
    epoch: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    images_per_second: float


@dataclass
class Callbacks:
    """Hooks for progress bars and experiment trackers; all optional."""

    on_start: Callable[[int, int], None] | None = None  # (start step, total steps)
    on_step: Callable[[StepReport], None] | None = None
    on_log: Callable[[dict], None] | None = None  # a losses.csv row
    on_sample: Callable[[int, np.ndarray], None] | None = None  # (step, input | output | target grid)
    sample_freq: int = 0


class Pix2Pix:
    """Both networks, their optimisers and schedulers, and one training step.

    ``early_steps=False`` keeps every G gradient until the step after backward (see ``EarlySteps``).
    """

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        group: Group = Group(),
        acceleration: Acceleration | None = None,
        early_steps: bool = True,
    ):
        self.config, self.device = config, device
        self.acceleration = accel = acceleration or Acceleration(device)
        architecture = config.architecture()
        self.generator = build_generator(architecture)
        self.discriminator = build_discriminator(architecture)
        for network in (self.generator, self.discriminator):
            init_weights(network)  # on the CPU, in the default layout: the same weights for a seed everywhere
            accel.prepare(network)
        # What the gradient-carrying passes go through: DDP across torchrun processes, else the
        # networks; compiled when asked. The frozen-D pass of the G step uses the bare D.
        self._generator = accel.compiled(group.wrap(self.generator))
        self._discriminator = accel.compiled(group.wrap(self.discriminator))
        self._frozen_discriminator = accel.compiled(self.discriminator)
        self.scaler = accel.grad_scaler()
        self.gan_loss = GANLoss(config.gan_mode)
        fused = device.type in ("cpu", "cuda")
        betas = (config.beta1, config.beta2)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas, fused=fused)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas, fused=fused)
        self.scheduler_g = torch.optim.lr_scheduler.LambdaLR(self.optimizer_g, lambda e: config.lr_factor(e))
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, lambda e: config.lr_factor(e))
        # Only G's: D's gradients are 5 % of G's and freed before G's backward pass.
        use_early_steps = early_steps and not self.scaler.is_enabled() and group.world_size == 1
        self._early_steps_g = EarlySteps(self.optimizer_g, self.generator.parameters()) if use_early_steps else None

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, accel, scaler = self.config, self.acceleration, self.scaler
        inputs, targets = accel.to_device(inputs), accel.to_device(targets)
        with accel.autocast():
            fake = self._generator(inputs)

            self.discriminator.requires_grad_(True)
            self.optimizer_d.zero_grad(set_to_none=True)
            d_fake = self.gan_loss(self._discriminator(inputs, fake.detach()), real=False)
            d_real = self.gan_loss(self._discriminator(inputs, targets), real=True)
        scaler.scale((d_fake + d_real) * 0.5).backward()
        scaler.step(self.optimizer_d)

        # D is frozen here: the plain network, as DDP would wait for D gradients that never come.
        self.discriminator.requires_grad_(False)
        self.optimizer_g.zero_grad(set_to_none=True)
        with accel.autocast():
            g_gan = self.gan_loss(self._frozen_discriminator(inputs, fake), real=True)
            g_l1 = torch.nn.functional.l1_loss(fake.float(), targets)
        with self._early_steps_g.during_backward() if self._early_steps_g else contextlib.nullcontext():
            scaler.scale(g_gan * cfg.gan_weight + g_l1 * cfg.l1_weight).backward()
        scaler.step(self.optimizer_g)  # the gradients not stepped already
        scaler.update()  # one loss scale for both networks, adjusted once per step
        return {"G_GAN": g_gan.detach(), "G_L1": g_l1.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach()}

    def end_epoch(self) -> None:
        self.scheduler_g.step()
        self.scheduler_d.step()

    @property
    def lr(self) -> float:
        return self.optimizer_g.param_groups[0]["lr"]

    def state(self) -> dict:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scheduler_g": self.scheduler_g.state_dict(),
            "scheduler_d": self.scheduler_d.state_dict(),
            "grad_scaler": self.scaler.state_dict(),  # empty unless training in fp16
        }

    def load_state(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.scheduler_g.load_state_dict(state["scheduler_g"])
        self.scheduler_d.load_state_dict(state["scheduler_d"])
        if state.get("grad_scaler") and self.scaler.is_enabled():  # else a fresh scale: AMP may change on resume
            self.scaler.load_state_dict(state["grad_scaler"])


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _StopSignals:
    """Turn SIGTERM / SIGINT into a flag the loop checks between steps (cluster preemption)."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _check_resumable(saved: dict, config, path: Path, keys: Sequence[str] = RESUME_KEYS) -> None:
    old = saved.get("config", {})
    changed = [f"{k} {old.get(k)!r} -> {getattr(config, k)!r}" for k in keys if old.get(k) != getattr(config, k)]
    if changed:
        raise UserError(
            f"{path}: this run was started with other options ({'; '.join(changed)}); "
            "use a new output folder or the original options"
        )


def _rewrite_losses(path: Path, up_to_step: int, columns: Sequence[str] = LOSS_COLUMNS) -> None:
    """Keep the losses.csv rows up to the resumed step (later rows belong to lost work)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def train(
    config: TrainConfig,
    image_paths: Sequence[Path],
    output_dir: Path,
    callbacks: Callbacks | None = None,
    load_progress: Callable[[int], None] | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Train (or resume) into ``output_dir``; returns a summary. Raises ``TrainingInterrupted``.

    ``cache_dir``: keep the decoded images there as a memory-mapped file, reused by later runs
    on the same files (see ``pix2pix.data.dataset``); by default they are decoded into memory.

    Under torchrun each process trains on its shard of every epoch (see ``pix2pix.train.distributed``);
    rank 0 alone writes files and calls back.
    """
    config.depth()  # fail on an impossible crop size before loading any data
    with session(select_device(config.device)) as (group, device):
        if not group.main:
            callbacks, load_progress = None, None
        return _train(config, image_paths, Path(output_dir), callbacks or Callbacks(), load_progress, group, device, cache_dir)


def _train(
    config: TrainConfig,
    image_paths: Sequence[Path],
    output_dir: Path,
    callbacks: Callbacks,
    load_progress: Callable[[int], None] | None,
    group: Group,
    device: torch.device,
    cache_dir: Path | None,
) -> dict:
    checkpoint_path = output_dir / ckpt.CHECKPOINT_NAME
    losses_path = output_dir / "losses.csv"
    if not image_paths:
        raise UserError("no training images")
    per_process = -(-len(image_paths) // group.world_size)  # the length of an epoch plan's shard
    steps_per_epoch = -(-per_process // config.batch_size)
    total_steps = config.total_epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    saved = ckpt.load(checkpoint_path) if checkpoint_path.exists() else None
    if saved is not None:
        _check_resumable(saved, config, checkpoint_path)
        if saved["step"] >= total_steps and (output_dir / ckpt.GENERATOR_NAME).exists():
            return {"steps": saved["step"], "epochs": saved["epoch"], "images": len(image_paths),
                    "steps_per_epoch": steps_per_epoch, "already_complete": True}
        if saved.get("world_size", 1) != group.world_size:  # the shards, and so the epochs, would differ
            raise UserError(f"{checkpoint_path}: this run was started with {saved.get('world_size', 1)} processes; resume it with as many")

    torch.manual_seed(config.seed)
    dataset = TrainingSet(image_paths, config.task, config.load_size, config.crop_size, config.flip, load_progress, cache_dir)
    acceleration = resolve(device, config.amp, config.tf32, config.channels_last, config.cudnn_benchmark, config.compile, config.cpu_kernels)
    model = Pix2Pix(config, device, group, acceleration)
    if config.crop_size < model.discriminator.min_size():
        raise UserError(
            f"crop size {config.crop_size} is too small for a {config.patch}x{config.patch} PatchGAN "
            f"(needs at least {model.discriminator.min_size()} px); use a smaller --patch"
        )
    step, epoch, batch_index = 0, 0, 0
    if saved is not None:
        model.load_state(saved)
        set_rng_state(saved["rng"])
        step, epoch, batch_index = saved["step"], saved["epoch"], saved["batch_index"]
        if group.main:
            _rewrite_losses(losses_path, step)

    def save_checkpoint() -> None:
        if not group.main:
            return
        ckpt.save(
            {
                "config": config.model_dump(mode="json"),
                "architecture": config.architecture(),
                **model.state(),
                "rng": rng_state(),
                "step": step,
                "epoch": epoch,
                "batch_index": batch_index,
                "world_size": group.world_size,
            },
            checkpoint_path,
        )

    if group.main:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / "options.json", config.model_dump_json(indent=2) + "\n")
    if callbacks.on_start:
        callbacks.on_start(step, total_steps)

    window: dict[str, float] = dict.fromkeys(LOSS_NAMES, 0.0)
    window_steps = 0
    last_time, last_step = time.perf_counter(), step
    images_per_second = 0.0
    with _StopSignals() as stop:
        while step < total_steps:
            plan = dataset.epoch_plan(config.seed, epoch).shard(group.rank, group.world_size)
            while batch_index < steps_per_epoch and step < total_steps:
                inputs, targets = dataset.batch(plan, batch_index, config.batch_size)
                losses = model.train_step(inputs, targets)
                batch_index += 1
                step += 1
                values, stopping = group.step_summary(losses, stop.received is not None)
                for name in LOSS_NAMES:
                    window[name] += values[name]
                window_steps += 1
                now = time.perf_counter()
                if now - last_time > 0.5:
                    images_per_second = (step - last_step) * inputs.shape[0] * group.world_size / (now - last_time)
                    last_time, last_step = now, step
                if step % config.log_freq == 0 or step == total_steps:
                    row = {"step": step, "epoch": epoch + 1, **{k: v / window_steps for k, v in window.items()}, "lr": model.lr}
                    if group.main:
                        _append_loss_row(losses_path, row)
                    if callbacks.on_log:
                        callbacks.on_log(row)
                    window = dict.fromkeys(LOSS_NAMES, 0.0)
                    window_steps = 0
                if callbacks.on_step:
                    callbacks.on_step(StepReport(step, epoch + 1, total_steps, values, model.lr, images_per_second))
                if callbacks.on_sample and callbacks.sample_freq and (step % callbacks.sample_freq == 0 or step == total_steps):
                    callbacks.on_sample(step, sample_grid(model.generator, config.task, *dataset.fixed_batch(4)))
                if step % config.save_freq == 0 and step < total_steps:
                    save_checkpoint()
                if stopping:
                    save_checkpoint()
                    group.barrier()  # no process exits before the checkpoint is whole
                    raise TrainingInterrupted(stop.received or signal.SIGTERM, step)
            if batch_index >= steps_per_epoch:
                model.end_epoch()
                epoch, batch_index = epoch + 1, 0
        save_checkpoint()

    if group.main:
        ckpt.save(
            {
                "config": config.model_dump(mode="json"),
                "architecture": config.architecture(),
                "generator": model.generator.state_dict(),
                "step": step,
                "epoch": epoch,
            },
            output_dir / ckpt.GENERATOR_NAME,
        )
    return {"steps": step, "epochs": epoch, "images": len(dataset), "steps_per_epoch": steps_per_epoch}


def sample_grid(generator: nn.Module, task: Task, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Rows of input | output | target as one uint8 image, for people to watch training.

    Runs in eval mode under a forked RNG, so sampling leaves training bit-for-bit unchanged.
    """
    was_training = generator.training
    device = next(generator.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        generator.eval()
        outputs = generator(inputs.to(device))
        generator.train(was_training)
    rows = []
    for network_input, output, target in zip(inputs, outputs, targets):
        input_rgb, output_rgb = task.to_rgb(network_input, output)
        _, target_rgb = task.to_rgb(network_input, target)
        rows.append(np.concatenate([input_rgb, output_rgb, target_rgb], axis=1))
    return np.concatenate(rows, axis=0)


def _append_loss_row(path: Path, row: dict, columns: Sequence[str] = LOSS_COLUMNS) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


