"""The article's first model: a conditional DCGAN that draws the digit it is asked for.

G(z|y) and D(x|y) (``pix2pix.nn.digits``) play
V(D,G) = E[log D(x|y)] + E[log(1 - D(G(z|y)|y))], G with the usual non-saturating loss, plus a
mode-seeking term (MSGAN): on 1,797 digits the plain game soon gives one image per digit,
whatever z (measured diversity 0.2 of the real digits'; 1.0 with the term).
Training runs the loop pix2pix runs (``pix2pix.train.loop``), with its guarantees: a killed and
resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from pix2pix.data.digits import IMAGE_SIZE, N_CLASSES, Digits, load_data
from pix2pix.data.images import save_image
from pix2pix.files import atomic_write_text
from pix2pix.nn.device import select_device
from pix2pix.nn.digits import DigitDiscriminator, DigitGenerator, draw, generate
from pix2pix.nn.losses import GANLoss
from pix2pix.nn.networks import init_weights
from pix2pix.train.config import CGAN_ARCHITECTURE_KEYS, CGAN_OPTIMISATION_KEYS, CGANConfig
from pix2pix.train.loop import Callbacks, fit

LOSS_NAMES = ("G_GAN", "G_MS", "D_real", "D_fake")
RESUME_KEYS = (*CGAN_ARCHITECTURE_KEYS, *CGAN_OPTIMISATION_KEYS, "seed", "batch_size", "mnist_dir")
METRICS_NAME = "metrics.json"  # written last: a run folder with it is finished
PER_DIGIT_NAME = "per_digit.json"  # each digit's accuracy: kept out of metrics.json, whose every key is a `dvc metrics show` column


class ConditionalGAN:
    """Both networks, their Adam optimisers and one step of the minimax game on ``data``, as
    ``pix2pix.train.loop`` drives it; sample grids and metrics go to ``output_dir``."""

    loss_names = LOSS_NAMES

    def __init__(self, config: CGANConfig, device: torch.device, data: Digits, output_dir: Path):
        self.config, self.device, self.data, self.output_dir = config, device, data, output_dir
        self.generator = DigitGenerator(config.nz, config.ngf).to(device)
        self.discriminator = DigitDiscriminator(config.ndf).to(device)
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.gan_loss = GANLoss("vanilla")
        betas, fused = (config.beta1, config.beta2), device.type in ("cpu", "cuda")
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas, fused=fused)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas, fused=fused)

    @property
    def lr(self) -> float:
        return self.config.lr  # no schedule

    def epoch_plan(self, epoch: int) -> torch.Tensor:
        return self.data.epoch_order(self.config.seed, epoch)

    def batch(self, plan: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.batch_size
        return self.data.batch(plan[index * size : (index + 1) * size])

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D step and one G step. The fakes come in two halves with the same labels and
        different z, for the mode-seeking term: without it G soon draws one image per digit."""
        images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)  # pinned by the feed on CUDA
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

    def sample(self) -> np.ndarray:
        """Every digit ``grid_columns`` times, one row per digit, from the same noise each time."""
        return draw(self.generator, range(N_CLASSES), self.config.grid_columns, self.config.seed)[1]

    def end_epoch(self, epoch: int) -> np.ndarray:
        return self.sample()  # the loop keeps it, as samples/step_NNNNNNN.png

    def finish(self) -> np.ndarray:
        """samples/final.png, per_digit.json, then metrics.json: how often the judge reads the digit asked for."""
        grid = self.sample()
        save_image(grid, self.output_dir / "samples" / "final.png")  # the report's grid
        metrics, per_digit = DigitJudge(self.data).conditioning(self.generator, self.config.eval_per_digit, self.config.seed)
        atomic_write_text(self.output_dir / PER_DIGIT_NAME, json.dumps(per_digit, indent=2) + "\n")
        atomic_write_text(self.output_dir / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")
        return grid

    def state(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in ("generator", "discriminator", "optimizer_g", "optimizer_d")}

    def load_state(self, state: dict) -> None:
        for name in ("generator", "discriminator", "optimizer_g", "optimizer_d"):
            getattr(self, name).load_state_dict(state[name])


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

    def conditioning(self, generator: DigitGenerator, per_digit: int, seed: int) -> tuple[dict, dict[str, float]]:
        """How often the judge reads the requested digit in ``per_digit`` samples of each, and
        how varied the samples of one digit are next to real ones (near 0: mode collapse); then
        the share read right for each digit, apart (the summary stays a few numbers)."""
        labels = torch.arange(N_CLASSES).repeat_interleave(per_digit)
        images = generate(generator, labels, seed)
        hits = self.model.predict(self.features(images)) == labels.numpy()
        per_label = hits.reshape(N_CLASSES, per_digit).mean(axis=1)
        summary = {
            "conditioning_accuracy": float(hits.mean()),
            "classifier_accuracy": self.accuracy,
            "diversity": spread(images, labels) / self.real_spread,
            "samples_per_digit": per_digit,
        }
        return summary, {str(digit): float(value) for digit, value in enumerate(per_label)}


def spread(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Pixel standard deviation among images of the same digit, averaged over pixels and digits."""
    values = images.flatten(1).float() / 255.0
    return float(torch.stack([values[labels == digit].std(dim=0).mean() for digit in labels.unique()]).mean())


def train(config: CGANConfig, output_dir: Path, callbacks: Callbacks | None = None, data: Digits | None = None) -> dict:
    """Train (or resume) into ``output_dir`` on ``data`` (default: as the config says); returns a
    summary with ``metrics``.

    The run folder gets checkpoint.pt, generator.pt, losses.csv, options.json,
    samples/step_NNNNNNN.png (at each epoch's end), samples/final.png, per_digit.json and metrics.json. Raises ``TrainingInterrupted``.
    """
    output_dir = Path(output_dir)
    device = select_device(config.device)
    data = load_data(config.mnist_dir) if data is None else data
    summary = fit(
        lambda: ConditionalGAN(config, device, data, output_dir),
        config, output_dir, len(data), config.epochs, RESUME_KEYS, callbacks, done_name=METRICS_NAME,
    )  # fmt: skip
    return {**summary, "data": data.source, "metrics": json.loads((output_dir / METRICS_NAME).read_text())}
