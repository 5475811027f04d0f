"""The article's first model: a conditional DCGAN that draws the digit it is asked for.

G(z|y) joins noise z to a learned embedding of the label y and up-samples to a 32x32 digit;
D(x|y) sees the image joined to ten one-hot label planes. Both play
V(D,G) = E[log D(x|y)] + E[log(1 - D(G(z|y)|y))], G with the usual non-saturating loss, plus a
mode-seeking term (MSGAN): on 1,797 digits the plain game soon gives one image per digit,
whatever z (measured diversity 0.2 of the real digits'; 1.0 with the term).
Training keeps pix2pix training's guarantees (and reuses its pieces): seeded init, data order
from (seed, epoch), torch RNG state in an atomic checkpoint, SIGTERM -> checkpoint, so a killed
and resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import save_image
from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text
from pix2pix.nn.losses import GANLoss
from pix2pix.nn.networks import init_weights
from pix2pix.train.config import CGAN_ARCHITECTURE_KEYS, CGAN_KIND, CGANConfig
from pix2pix.train.loop import (
    Callbacks,
    StepReport,
    TrainingInterrupted,
    _append_loss_row,
    _check_resumable,
    _rewrite_losses,
    _StopSignals,
    rng_state,
    select_device,
    set_rng_state,
)

IMAGE_SIZE = 32
N_CLASSES = 10
LOSS_NAMES = ("G_GAN", "G_MS", "D_real", "D_fake")
LOSS_COLUMNS = ("step", "epoch", *LOSS_NAMES, "lr")
RESUME_KEYS = (*CGAN_ARCHITECTURE_KEYS, "seed", "batch_size", "mnist_dir")

IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: uint8 data, 3 and 1 dimensions
MNIST_FILES = {IDX_IMAGES: "train-images-idx3-ubyte", IDX_LABELS: "train-labels-idx1-ubyte"}
MAX_IDX_BYTES = 1 << 30  # refuse gzip bombs: full MNIST is 47 MB unpacked


# --- data --------------------------------------------------------------------------------


@dataclass
class Digits:
    """Labelled digits as ``(N, 32, 32)`` uint8 images (white ink on black) and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] as ``(B, 1, 32, 32)`` and their labels."""
        return self.images[indices].unsqueeze(1).float() / 127.5 - 1.0, self.labels[indices]


def _resize(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> uint8 ``(N, 32, 32)``, bicubic like the pix2pix data."""
    batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)
    resized = F.interpolate(batch, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=False)
    return resized.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def load_sklearn_digits() -> Digits:
    """The 1,797 handwritten 8x8 digits that ship with scikit-learn (values 0..16): no network."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Digits(_resize(bunch.images * (255.0 / 16.0)), torch.from_numpy(bunch.target).long(), "sklearn-digits")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One IDX file (MNIST's format: big-endian magic and sizes, then uint8 values), gzipped or not."""
    path, gzipped = Path(path), False
    try:
        with path.open("rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as handle:
            raw = handle.read(MAX_IDX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: unreadable{' gzip' if gzipped else ''} file ({exc})") from None
    if len(raw) > MAX_IDX_BYTES:
        raise UserError(f"{path}: more than {MAX_IDX_BYTES} bytes unpacked; not an MNIST file")
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise UserError(f"{path}: not an IDX {'image' if magic == IDX_IMAGES else 'label'} file (magic number {found}, expected {magic})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(f"{path}: {len(raw)} bytes, expected {expected} for {' x '.join(map(str, shape))} values (truncated or corrupt)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _idx_file(folder: Path, magic: int) -> Path:
    name = MNIST_FILES[magic]
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{folder}: no {name} or {name}.gz (the standard MNIST training files)")


def load_mnist(folder: Path) -> Digits:
    """MNIST's training set from the standard IDX files in ``folder``, checked and resized to 32x32."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a directory")
    images_path, labels_path = _idx_file(folder, IDX_IMAGES), _idx_file(folder, IDX_LABELS)
    images, labels = read_idx(images_path, IDX_IMAGES), read_idx(labels_path, IDX_LABELS)
    if len(images) == 0:
        raise UserError(f"{images_path}: holds no images")
    if min(images.shape[1:]) < 8:
        raise UserError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels; at least 8x8 expected")
    if len(labels) != len(images):
        raise UserError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if labels.max() >= N_CLASSES:
        raise UserError(f"{labels_path}: label {int(labels.max())} out of range (digits are 0..9)")
    scarce = np.flatnonzero(np.bincount(labels, minlength=N_CLASSES) < 2)
    if len(scarce):
        raise UserError(f"{labels_path}: fewer than 2 images of digit {', '.join(map(str, scarce))}; every digit needs examples to learn and judge")
    return Digits(_resize(images), torch.from_numpy(labels.astype(np.int64)), "mnist")


def load_data(mnist_dir: str | Path | None) -> Digits:
    return load_mnist(Path(mnist_dir)) if mnist_dir else load_sklearn_digits()


# --- networks ----------------------------------------------------------------------------


class DigitGenerator(nn.Module):
    """G(z|y): [z, embedding(y)] as a 1x1 map, four transposed convolutions up to 32x32, tanh."""

    def __init__(self, nz: int = 64, ngf: int = 32):
        super().__init__()
        self.nz = nz
        self.embed = nn.Embedding(N_CLASSES, nz)
        widths = (nz * 2, ngf * 4, ngf * 2, ngf)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            stride, padding = (1, 0) if index == 0 else (2, 1)  # 1 -> 4 -> 8 -> 16 px
            layers += [nn.ConvTranspose2d(width_in, width_out, 4, stride, padding, bias=False), nn.BatchNorm2d(width_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(ngf, 1, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], dim=1)[:, :, None, None])


class DigitDiscriminator(nn.Module):
    """D(x|y): the image with ten one-hot label planes, strided convolutions down to one logit."""

    def __init__(self, ndf: int = 32):
        super().__init__()
        widths = (1 + N_CLASSES, ndf, ndf * 2, ndf * 4)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):  # 32 -> 16 -> 8 -> 4 px
            layers.append(nn.Conv2d(width_in, width_out, 4, 2, 1, bias=index == 0))
            if index:
                layers.append(nn.BatchNorm2d(width_out))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(ndf * 4, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        planes = F.one_hot(labels, N_CLASSES).to(images.dtype)[:, :, None, None].expand(-1, -1, *images.shape[2:])
        return self.net(torch.cat([images, planes], dim=1)).flatten()


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


# --- sampling and the conditioning check -------------------------------------------------


def generate(generator: DigitGenerator, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Digits for ``labels`` as uint8 ``(N, 32, 32)``: eval mode and a private noise generator,
    so sampling never touches the training RNG or batch-norm statistics."""
    device = next(generator.parameters()).device
    z = torch.randn(len(labels), generator.nz, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = generator(z, labels.to(device)).cpu()
    generator.train(was_training)
    return ((images.squeeze(1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def draw(generator: DigitGenerator, digits: Sequence[int], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` samples of each digit: uint8 images ``(len(digits) * count, 32, 32)`` and a grid
    with one row per digit (row k shows ``digits[k]``) and 2 px gray gaps."""
    images = generate(generator, torch.tensor(list(digits)).repeat_interleave(count), seed).numpy()
    return images, tile(images, len(digits), count)


def tile(images: np.ndarray, rows: int, columns: int, gap: int = 2) -> np.ndarray:
    size = images.shape[-1]
    step = size + gap
    grid = np.full((rows * step + gap, columns * step + gap), 128, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[gap + row * step : gap + row * step + size, gap + column * step : gap + column * step + size] = image
    return grid


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
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
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


def generator_from_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[DigitGenerator, dict]:
    """The digit generator of a cgan run folder, generator.pt or checkpoint.pt, and its config."""
    payload = ckpt.load(ckpt.resolve(path), map_location=device)
    architecture = payload.get("architecture", {})
    if architecture.get("model") != CGAN_KIND:
        raise UserError(f"{path}: not a `pix2pix cgan` checkpoint (a pix2pix model? use `pix2pix evaluate`)")
    generator = DigitGenerator(architecture["nz"], architecture["ngf"])
    generator.load_state_dict(payload["generator"])
    return generator.to(device).eval(), payload["config"]
