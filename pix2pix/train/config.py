"""Validated training options. Defaults are the pix2pix paper's / reference implementation's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pix2pix.nn.networks import PATCH_LAYERS, unet_depth
from pix2pix.task import Task

# Options that shape the networks or the data: a resumed run must keep them.
ARCHITECTURE_KEYS = (
    "direction", "lab_colorization", "crop_size", "unet_depth", "ngf", "ndf", "norm", "patch", "dropout",
)  # fmt: skip


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    direction: Literal["AtoB", "BtoA"] = "AtoB"
    lab_colorization: bool = False
    # length: constant lr for n_epochs, then linear decay to 0 over n_epochs_decay
    n_epochs: int = Field(100, ge=0)
    n_epochs_decay: int = Field(100, ge=0)
    max_epochs: int | None = Field(None, ge=1, description="stop after this many epochs (default n_epochs + n_epochs_decay)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps, whatever the epochs")
    # data
    batch_size: int = Field(1, ge=1)
    load_size: int = Field(286, ge=2)
    crop_size: int = Field(256, ge=2)
    flip: bool = True
    # networks
    unet_depth: int | None = Field(None, ge=1, le=12)
    ngf: int = Field(64, ge=1)
    ndf: int = Field(64, ge=1)
    norm: Literal["batch", "instance"] = "batch"
    patch: int = 70
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    # objective and optimiser
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    l1_weight: float = Field(100.0, ge=0.0)
    gan_weight: float = Field(1.0, ge=0.0)
    lr: float = Field(2e-4, gt=0.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    # run
    seed: int = Field(0, ge=0)
    save_freq: int = Field(5000, ge=1, description="steps between checkpoints (one is also written at the end)")
    log_freq: int = Field(10, ge=1, description="steps between rows of losses.csv")
    device: str = "auto"
    # speed on the device (pix2pix.device): not the model or the maths, so a resumed run may change them
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    tf32: Literal["auto", "on", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    cudnn_benchmark: Literal["auto", "on", "off"] = "auto"
    compile: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.patch not in PATCH_LAYERS:
            raise ValueError(f"patch must be one of {sorted(PATCH_LAYERS)}, got {self.patch}")
        if self.crop_size > self.load_size:
            raise ValueError(f"crop_size {self.crop_size} is larger than load_size {self.load_size}")
        return self

    @property
    def task(self) -> Task:
        return Task(self.direction, self.lab_colorization)

    @property
    def total_epochs(self) -> int:
        return self.max_epochs or (self.n_epochs + self.n_epochs_decay)

    def depth(self) -> int:
        """The U-Net depth; raises a ``UserError`` when the crop size does not fit it."""
        return unet_depth(self.crop_size, self.unet_depth)

    def architecture(self) -> dict:
        return {key: getattr(self, key) for key in ARCHITECTURE_KEYS}

    def lr_factor(self, epoch: int) -> float:
        """Linear policy of the reference: full lr for n_epochs, then down by 1/(decay+1) per epoch."""
        return 1.0 - max(0, epoch + 1 - self.n_epochs) / (self.n_epochs_decay + 1)
