"""The article's first model: a conditional DCGAN that draws the digit it is asked for.

G(z|y) and D(x|y) (``pix2pix.nn.digits``) play
V(D,G) = E[log D(x|y)] + E[log(1 - D(G(z|y)|y))], G with the usual non-saturating loss, plus a
mode-seeking term (MSGAN): on 1,797 digits the plain game soon gives one image per digit,
whatever z (measured diversity 0.2 of the real digits'; 1.0 with the term).
Training keeps pix2pix training's guarantees (and reuses its pieces): seeded init, data order
from (seed, epoch), torch RNG state in an atomic checkpoint, SIGTERM -> checkpoint, so a killed
and resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from pix2pix import checkpoint as ckpt
from pix2pix.data.digits import IMAGE_SIZE, N_CLASSES, SEED_MAX, Digits, load_data
from pix2pix.data.images import save_image
from pix2pix.device import select_device
from pix2pix.files import atomic_write_text
from pix2pix.nn.digits import MODEL_KIND, DigitDiscriminator, DigitGenerator, draw, generate
from pix2pix.nn.losses import GANLoss
from pix2pix.nn.networks import init_weights
from pix2pix.train.loop import (
    Callbacks,
    StepReport,
    TrainingInterrupted,
    _append_loss_row,
    _check_resumable,
    _rewrite_losses,
    _StopSignals,
    rng_state,
    set_rng_state,
)

LOSS_NAMES = ("G_GAN", "G_MS", "D_real", "D_fake")
LOSS_COLUMNS = ("step", "epoch", *LOSS_NAMES, "lr")
ARCHITECTURE_KEYS = ("nz", "ngf", "ndf")
RESUME_KEYS = (*ARCHITECTURE_KEYS, "seed", "batch_size", "mnist_dir")


class CGANConfig(BaseModel):
    """Options of ``pix2pix cgan train``; the defaults train in about a minute on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mnist_dir: str | None = None  # None: scikit-learn's 8x8 digits, no download
    epochs: int = Field(30, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    nz: int = Field(64, ge=1)
    ngf: int = Field(32, ge=1)
    ndf: int = Field(32, ge=1)
    mode_seeking: float = Field(0.3, ge=0.0)  # 0: the article's plain objective
    lr: float = Field(2e-4, gt=0.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    save_freq: int = Field(500, ge=1)
    log_freq: int = Field(10, ge=1)
    grid_columns: int = Field(10, ge=1)
    eval_per_digit: int = Field(100, ge=1)
    device: str = "auto"

    def architecture(self) -> dict:
        return {"model": MODEL_KIND, **{key: getattr(self, key) for key in ARCHITECTURE_KEYS}}


class ConditionalGAN:
    """Both networks, their Adam optimisers and one step of the minimax game."""

    def __init__(self, config: CGANConfig, device: torch.device):
        self.config, self.device = config, device
        self.generator = DigitGenerator(config.nz, config.ngf).to(device)
        self.discriminator = DigitDiscriminator(config.ndf).to(device)
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.gan_loss = GANLoss("vanilla")
        betas, fused = (config.beta1, config.beta2), device.type in ("cpu", "cuda")
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas, fused=fused)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas, fused=fused)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D step and one G step. The fakes come in two halves with the same labels and
        different z, for the mode-seeking term: without it G soon draws one image per digit."""
        images, labels = images.to(self.device), labels.to(self.device)
        half = len(labels) // 2
        fake_labels = torch.cat([labels[:half], labels[:half], labels[2 * half :]])
        z = torch.randn(len(labels), self.config.nz, device=self.device)
        fake = self.generator(z, fake_labels)

        self.discriminator.requires_grad_(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        d_real = self.gan_loss(self.discriminator(images, labels), real=True)
        d_fake = self.gan_loss(self.discriminator(fake.detach(), fake_labels), real=False)
        (d_real + d_fake).backward()
        self.optimizer_d.step()

        self.discriminator.requires_grad_(False)
        self.optimizer_g.zero_grad(set_to_none=True)
        g_gan = self.gan_loss(self.discriminator(fake, fake_labels), real=True)
        g_ms = torch.zeros((), device=self.device)
        if half and self.config.mode_seeking:
            # MSGAN (Mao et al. 2019): reward images that differ as much as their z do
            spread = (fake[:half] - fake[half : 2 * half]).abs().mean() / (z[:half] - z[half : 2 * half]).abs().mean()
            g_ms = self.config.mode_seeking / (spread + 1e-5)
        (g_gan + g_ms).backward()
        self.optimizer_g.step()
        return {"G_GAN": g_gan.detach(), "G_MS": g_ms.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach()}

    def state(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in ("generator", "discriminator", "optimizer_g", "optimizer_d")}

    def load_state(self, state: dict) -> None:
        for name in ("generator", "discriminator", "optimizer_g", "optimizer_d"):
            getattr(self, name).load_state_dict(state[name])


# --- the conditioning check -------------------------------------------------------------


class DigitJudge:
    """A plain logistic regression on real digits, pooled back to 8x8, that names generated ones.

    Its split and settings are fixed (not the training seed), so every run is judged alike.
    """

    MAX_TRAIN = 10_000  # enough for MNIST at 8x8; keeps the fit to seconds

    def __init__(self, data: Digits):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        held_out_size = max(len(data) // 5, N_CLASSES)  # one of each digit at least
        train, held_out = train_test_split(np.arange(len(data)), test_size=held_out_size, random_state=0, stratify=data.labels.numpy())
        train = train[: self.MAX_TRAIN]
        features, labels = self.features(data.images), data.labels.numpy()
        self.model = LogisticRegression(max_iter=2000).fit(features[train], labels[train])
        self.accuracy = float(self.model.score(features[held_out], labels[held_out]))
        self.real_spread = spread(data.images[held_out], data.labels[held_out])

    @staticmethod
    def features(images: torch.Tensor) -> np.ndarray:
        pooled = F.avg_pool2d(images.unsqueeze(1).float() / 255.0, IMAGE_SIZE // 8)
        return pooled.flatten(1).numpy()

    def conditioning(self, generator: DigitGenerator, per_digit: int, seed: int) -> dict:
        """How often the judge reads the requested digit in ``per_digit`` samples of each, and
        how varied the samples of one digit are next to real ones (near 0: mode collapse)."""
        labels = torch.arange(N_CLASSES).repeat_interleave(per_digit)
        images = generate(generator, labels, seed)
        hits = self.model.predict(self.features(images)) == labels.numpy()
        per_label = hits.reshape(N_CLASSES, per_digit).mean(axis=1)
        return {
            "conditioning_accuracy": float(hits.mean()),
            "classifier_accuracy": self.accuracy,
            "diversity": spread(images, labels) / self.real_spread,
            "per_digit": {str(digit): float(value) for digit, value in enumerate(per_label)},
            "samples_per_digit": per_digit,
        }


def spread(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Pixel standard deviation among images of the same digit, averaged over pixels and digits."""
    values = images.flatten(1).float() / 255.0
    return float(torch.stack([values[labels == digit].std(dim=0).mean() for digit in labels.unique()]).mean())


# --- training ----------------------------------------------------------------------------


def train(config: CGANConfig, output_dir: Path, callbacks: Callbacks | None = None, data: Digits | None = None) -> dict:
    """Train (or resume) into ``output_dir`` on ``data`` (default: as the config says); returns a
    summary with ``metrics``.

    The run folder gets checkpoint.pt, generator.pt, losses.csv, options.json,
    samples/epoch_NNN.png, samples/final.png and metrics.json. Raises ``TrainingInterrupted``.
    """
    callbacks = callbacks or Callbacks()
    output_dir = Path(output_dir)
    checkpoint_path, losses_path, metrics_path = output_dir / ckpt.CHECKPOINT_NAME, output_dir / "losses.csv", output_dir / "metrics.json"
    device = select_device(config.device)
    data = load_data(config.mnist_dir) if data is None else data
    steps_per_epoch = -(-len(data) // config.batch_size)
    total_steps = min(config.epochs * steps_per_epoch, config.max_steps or float("inf"))
    summary = {"images": len(data), "steps_per_epoch": steps_per_epoch, "data": data.source}

    saved = ckpt.load(checkpoint_path) if checkpoint_path.exists() else None
    if saved is not None:
        _check_resumable(saved, config, checkpoint_path, RESUME_KEYS)
        if saved["step"] >= total_steps and metrics_path.exists():
            return {**summary, "steps": saved["step"], "metrics": json.loads(metrics_path.read_text()), "already_complete": True}

    torch.manual_seed(config.seed)
    model = ConditionalGAN(config, device)
    step, epoch, batch_index = 0, 0, 0
    if saved is not None:
        model.load_state(saved)
        set_rng_state(saved["rng"])
        step, epoch, batch_index = saved["step"], saved["epoch"], saved["batch_index"]
        _rewrite_losses(losses_path, step, LOSS_COLUMNS)

    def save_checkpoint() -> None:
        payload = {"config": config.model_dump(mode="json"), "architecture": config.architecture(), **model.state()}
        ckpt.save({**payload, "rng": rng_state(), "step": step, "epoch": epoch, "batch_index": batch_index}, checkpoint_path)

    def write_grid(name: str, log: bool = True) -> None:
        _, grid = draw(model.generator, range(N_CLASSES), config.grid_columns, config.seed)
        save_image(grid, output_dir / "samples" / f"{name}.png")
        if log and callbacks.on_sample:
            callbacks.on_sample(step, grid)

    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "options.json", config.model_dump_json(indent=2) + "\n")
    if callbacks.on_start:
        callbacks.on_start(step, total_steps)
    window, window_steps = dict.fromkeys(LOSS_NAMES, 0.0), 0
    last_time, last_step, images_per_second = time.perf_counter(), step, 0.0
    with _StopSignals() as stop:
        while step < total_steps:
            order = data.epoch_order(config.seed, epoch)
            while batch_index < steps_per_epoch and step < total_steps:
                images, labels = data.batch(order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size])
                values = {name: float(value) for name, value in model.train_step(images, labels).items()}
                batch_index, step, window_steps = batch_index + 1, step + 1, window_steps + 1
                window = {name: window[name] + values[name] for name in LOSS_NAMES}
                now = time.perf_counter()
                if now - last_time > 0.5:
                    images_per_second = (step - last_step) * len(labels) / (now - last_time)
                    last_time, last_step = now, step
                if step % config.log_freq == 0 or step == total_steps:
                    row = {"step": step, "epoch": epoch + 1, **{k: v / window_steps for k, v in window.items()}, "lr": config.lr}
                    _append_loss_row(losses_path, row, LOSS_COLUMNS)
                    if callbacks.on_log:
                        callbacks.on_log(row)
                    window, window_steps = dict.fromkeys(LOSS_NAMES, 0.0), 0
                if callbacks.on_step:
                    callbacks.on_step(StepReport(step, epoch + 1, total_steps, values, config.lr, images_per_second))
                if step % config.save_freq == 0 and step < total_steps:
                    save_checkpoint()
                if stop.received is not None:
                    save_checkpoint()
                    raise TrainingInterrupted(stop.received, step)
            if batch_index >= steps_per_epoch:
                epoch, batch_index = epoch + 1, 0
                write_grid(f"epoch_{epoch:03d}")
        save_checkpoint()

    generator_payload = {"config": config.model_dump(mode="json"), "architecture": config.architecture()}
    ckpt.save({**generator_payload, "generator": model.generator.state_dict(), "step": step, "epoch": epoch}, output_dir / ckpt.GENERATOR_NAME)
    write_grid("final", log=batch_index > 0)  # at an epoch's end MLflow already has this grid
    metrics = DigitJudge(data).conditioning(model.generator, config.eval_per_digit, config.seed)
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return {**summary, "steps": step, "epochs": epoch, "metrics": metrics}
