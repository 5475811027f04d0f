"""pix2pix as the training loop drives it: U-Net G and PatchGAN D, one step of their game, and the training set.

Order per step is the reference's: G forward; D step on (input, fake) and (input, real) with
the loss halved; G step through a fresh D pass with D frozen, GAN + L1 loss. An inpainting
model's fake is G's output composited into the given pixels (``Task.composite``) before both.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pix2pix.data.dataset import EpochPlan, TrainingSet, load_eval_pair
from pix2pix.errors import UserError
from pix2pix.infer.evaluate import run_generator, set_eval_mode
from pix2pix.infer.metrics import image_metrics
from pix2pix.nn.device import Acceleration, resolve, select_device
from pix2pix.nn.losses import GANLoss
from pix2pix.nn.networks import (
    build_discriminator,
    build_generator,
    init_weights,
)
from pix2pix.options import InferenceOptions
from pix2pix.task import Task
from pix2pix.train.config import (
    ARCHITECTURE_KEYS,
    HIGHER_IS_BETTER,
    OPTIMISATION_KEYS,
    TrainConfig,
)
from pix2pix.train.distributed import Group, session
from pix2pix.train.loop import Callbacks, Validation, fit

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")
# A resumed run must keep these (val_metric: the best score so far was measured by it).
RESUME_KEYS = (*ARCHITECTURE_KEYS, *OPTIMISATION_KEYS, "seed", "inpaint", "batch_size", "load_size", "flip", "val_metric")
# Validation scores as `pix2pix evaluate` does by default (one image per batch: --batch-size 1).
VALIDATION_MODE, VALIDATION_SEED = InferenceOptions.model_fields["eval_mode"].default, InferenceOptions.model_fields["seed"].default
EARLY_STEP_MIN_ELEMENTS = 2**20  # smaller ones wait for one fused step: stepping all singly cost 4 % at 64 px, from 2**20 2 %


class EarlySteps:
    """Adam steps each large parameter as soon as its gradient is whole, during the backward pass, and drops it.

    The G step's memory peak is G's gradients on top of the activations the backward pass still
    holds; stepped one by one as they are finished, they never all exist at once. Each parameter
    still gets one update from its whole gradient by the same optimiser, so the weights are
    bit-identical. Small parameters' gradients are set aside and handed back after the backward
    pass, for the usual ``optimizer.step()``. Not for a GradScaler (an fp16 step is skipped as a
    whole when any gradient overflows) nor DDP (its all-reduce writes the averaged gradients only
    when the backward pass ends). Memory and time: benchmarks/README.md.
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


class Pix2Pix:
    """Both networks, their optimisers and schedulers, and one training step.

    ``early_steps=False`` keeps every G gradient until the step after backward (see ``EarlySteps``).
    """

    loss_names = LOSS_NAMES

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        group: Group = Group(),
        acceleration: Acceleration | None = None,
        early_steps: bool = True,
    ):
        self.config, self.device, self.task = config, device, config.task
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
        use_early_steps = early_steps and not self.scaler.is_enabled() and not group.distributed
        self._early_steps_g = EarlySteps(self.optimizer_g, self.generator.parameters()) if use_early_steps else None

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, accel, scaler = self.config, self.acceleration, self.scaler
        inputs, targets = accel.to_device(inputs), accel.to_device(targets)
        with accel.autocast():
            fake = self.task.composite(inputs, self._generator(inputs))

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
            g_l1 = self.l1_loss(inputs, fake.float(), targets)
        with self._early_steps_g.during_backward() if self._early_steps_g else contextlib.nullcontext():
            scaler.scale(g_gan * cfg.gan_weight + g_l1 * cfg.l1_weight).backward()
        scaler.step(self.optimizer_g)  # the gradients not stepped already
        scaler.update()  # one loss scale for both networks, adjusted once per step
        return {"G_GAN": g_gan.detach(), "G_L1": g_l1.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach()}

    def l1_loss(self, inputs: torch.Tensor, fake: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean absolute error; for inpainting each pixel of the hole weighs ``hole_weight``, the rest 1.

        The composite's given pixels are the input's and carry no gradient, so the hole's pixels
        alone drive the L1 term: ``hole_weight`` sets how much, against the GAN term.
        """
        if not self.task.inpaint:
            return torch.nn.functional.l1_loss(fake, targets)
        weights = torch.where(self.task.hole_mask(inputs), self.config.hole_weight, 1.0)
        return (weights * (fake - targets).abs()).mean()

    def end_epoch(self, epoch: int) -> None:
        with warnings.catch_warnings():
            # A run resumed from a checkpoint of an epoch's last batch steps the schedule before its process's
            # first optimiser step: in order for the run, which torch cannot see from this process alone.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`", UserWarning)
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


def validation_scores(generator: nn.Module, task: Task, pairs: Sequence[tuple[torch.Tensor, np.ndarray]], acceleration: Acceleration) -> dict[str, float]:
    """The mean of each metric of `pix2pix evaluate` over ``(input, target RGB)`` pairs, in its default
    mode and dropout seed, one image at a time (as ``evaluate --batch-size 1``), on a copy of the
    generator under a forked RNG: training's weights, statistics and random stream stay untouched."""
    network = copy.deepcopy(generator)
    set_eval_mode(network, VALIDATION_MODE)
    device = acceleration.device
    rows = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
        torch.manual_seed(VALIDATION_SEED)
        for network_input, target_rgb in pairs:
            with acceleration.autocast():
                output = run_generator(network, acceleration.to_device(network_input[None])).float()
            _, output_rgb = task.to_rgb(network_input, task.composite(network_input, output[0].cpu()))
            rows.append(image_metrics(output_rgb, target_rgb, task.lab_colorization))
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


def sample_grid(generator: nn.Module, task: Task, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Rows of input | output | target as one uint8 image, for people to watch training.

    Runs in eval mode under a forked RNG, so sampling leaves training bit-for-bit unchanged.
    """
    was_training = generator.training
    device = next(generator.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        generator.eval()
        outputs = task.composite(inputs, generator(inputs.to(device)).cpu())
        generator.train(was_training)
    rows = []
    for network_input, output, target in zip(inputs, outputs, targets):
        input_rgb, output_rgb = task.to_rgb(network_input, output)
        _, target_rgb = task.to_rgb(network_input, target)
        rows.append(np.concatenate([input_rgb, output_rgb, target_rgb], axis=1))
    return np.concatenate(rows, axis=0)


class Pix2PixTraining(Pix2Pix):
    """Pix2Pix with its training set, as ``pix2pix.train.loop`` drives it: each process takes its shard of every epoch."""

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        group: Group,
        acceleration: Acceleration,
        dataset: TrainingSet,
        validation_pairs: Sequence[tuple[torch.Tensor, np.ndarray]] = (),
    ):
        super().__init__(config, device, group, acceleration)
        self.group, self.dataset, self.validation_pairs = group, dataset, validation_pairs

    def epoch_plan(self, epoch: int) -> EpochPlan:
        return self.dataset.epoch_plan(self.config.seed, epoch).shard(self.group.rank, self.group.world_size)

    def batch(self, plan: EpochPlan, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.batch(plan, index, self.config.batch_size)

    def sample(self) -> np.ndarray:
        return sample_grid(self.generator, self.config.task, *self.dataset.fixed_batch(4))

    def validate(self) -> dict[str, float]:
        return validation_scores(self.generator, self.config.task, self.validation_pairs, self.acceleration)

    def finish(self) -> None:
        """Nothing more: generator.pt is the run's product."""


def train(
    config: TrainConfig,
    image_paths: Sequence[Path],
    output_dir: Path,
    callbacks: Callbacks | None = None,
    load_progress: Callable[[int], None] | None = None,
    cache_dir: Path | None = None,
    inputs: str | None = None,
    val_paths: Sequence[Path] = (),
) -> dict:
    """Train (or resume) into ``output_dir``; returns a summary. Raises ``TrainingInterrupted``.

    ``cache_dir``: keep the decoded images there as a memory-mapped file, reused by later runs
    on the same files (see ``pix2pix.data.dataset``); by default they are decoded into memory.
    ``inputs``: resume only a checkpoint made from these inputs (see ``pix2pix.train.loop.fit``).
    ``val_paths``: validation pairs, scored every ``config.val_freq`` steps to keep best.pt (see
    ``validation_scores``; ``config.val_metric`` and ``config.early_stop`` apply).

    Under torchrun each process trains on its shard of every epoch (see ``pix2pix.train.distributed``);
    rank 0 alone writes files and calls back.
    """
    config.depth()  # fail on an impossible crop size before loading any data
    with session(select_device(config.device)) as (group, device):
        if not group.main:
            callbacks, load_progress = None, None
        if not image_paths:
            raise UserError("no training images")

        def build() -> Pix2PixTraining:
            dataset = TrainingSet(image_paths, config.task, config.load_size, config.crop_size, config.flip, load_progress, cache_dir)
            acceleration = resolve(device, config.amp, config.tf32, config.channels_last, config.cudnn_benchmark, config.compile, config.cpu_kernels)
            pairs = [load_eval_pair(path, config.task)[::2] for path in val_paths] if group.main else []
            return Pix2PixTraining(config, device, group, acceleration, dataset, pairs)

        validation = None
        if val_paths:
            validation = Validation(config.val_metric, config.val_metric in HIGHER_IS_BETTER, config.val_freq, config.early_stop)
        return fit(
            build, config, Path(output_dir), len(image_paths), config.total_epochs, RESUME_KEYS, callbacks, group,
            inputs=inputs, validation=validation,
        )  # fmt: skip
