"""Validated training options. Defaults are the pix2pix paper's / reference implementation's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pix2pix.errors import UserError
from pix2pix.nn.sizes import PATCH_LAYERS, patch_min_size, unet_depth
from pix2pix.options import DeviceName, DeviceOptions, Flags, Seed

if TYPE_CHECKING:
    from pix2pix.task import Task

# Options that shape the networks or the data: a resumed run must keep them.
ARCHITECTURE_KEYS = (
    "direction", "lab_colorization", "hints", "crop_size", "unet_depth", "ngf", "ndf", "norm", "patch", "dropout",
)  # fmt: skip


# Objective, optimiser and schedule: the checkpoint's optimiser state and losses were made with
# them, so a resumed run must keep them too (applied midway, options.json and MLflow's params would
# describe a run that never happened).
OPTIMISATION_KEYS = ("gan_mode", "l1_weight", "hole_weight", "gan_weight", "lr", "beta1", "beta2", "n_epochs", "n_epochs_decay")
FLOAT32_MAX = 3.4028234663852886e38

# The metrics of `pix2pix evaluate` that can pick best.pt, and those of them where higher is better.
VAL_METRICS = ("l1", "psnr", "ssim", "ciede2000")
HIGHER_IS_BETTER = ("psnr", "ssim")


def finite_in_float32(value: Any) -> Any:
    """Every float option of training (a field validator of all fields): training computes in
    float32, where a weight of 1e39 is inf and turns every loss into NaN."""
    if isinstance(value, float) and not abs(value) <= FLOAT32_MAX:  # false for NaN too
        raise ValueError(f"not finite in float32, in which training computes: at most {FLOAT32_MAX:.4g}")
    return value


PatchSize = Literal[tuple(PATCH_LAYERS)]  # type: ignore[valid-type]  # the sizes the discriminator can be built with


class TrainConfig(DeviceOptions):
    """Every option of a pix2pix training run, declared once: ``pix2pix train``, params.yaml and its schema derive from it."""

    direction: Annotated[
        Literal["AtoB", "BtoA"],
        Flags("Data", "--which-direction"),
        Field(description="AtoB: left half -> right half; BtoA: right -> left (facades labels -> photo)."),
    ] = "AtoB"
    lab_colorization: Annotated[
        bool, Flags("Data"), Field(description="Colorize: plain colour images, L channel in, ab channels out (Lab space).")
    ] = False
    inpaint: Annotated[
        bool,
        Flags("Data"),
        Field(description="Inpaint: the input's pure-white pixels are the hole (`pix2pix blank` paints it); the answer keeps every other pixel of the input and takes the network's only in the hole."),
    ] = False
    hints: Annotated[
        bool,
        Flags("Data"),
        Field(description="Colorization with colour hints (Zhang et al. 2017): the generator also takes a sparse ab hint image and its mask, simulated from the target in training (a random number of 1-9 px squares showing their mean colour, sometimes none); needs lab_colorization."),
    ] = False
    labels: Annotated[
        Literal["none", "facades"],
        Flags("Data"),
        Field(description="The input is a label map coloured with this palette (facades: the CMP facades' 12 classes), recorded in the checkpoint so that `pix2pix serve` draws with its classes; it changes nothing in training. It names the palette of the input, whichever side --direction makes the input (the facades data: B, so BtoA)."),
    ] = "none"
    batch_size: Annotated[int, Flags("Data"), Field(ge=1, description="Images per step (the paper uses 1).")] = 1
    load_size: Annotated[
        int, Flags("Data", "--scale-size"), Field(ge=2, description="Images are resized to this square before the random crop.")
    ] = 286
    crop_size: Annotated[
        int, Flags("Data"), Field(ge=2, description="Training crop, at most load_size; the U-Net depth follows it (256 -> 8 levels).")
    ] = 256
    flip: Annotated[bool, Flags("Data"), Field(description="Random horizontal flips.")] = True
    # networks
    ngf: Annotated[int, Flags("Model"), Field(ge=1, description="Generator filters in the first layer.")] = 64
    ndf: Annotated[int, Flags("Model"), Field(ge=1, description="Discriminator filters in the first layer.")] = 64
    norm: Annotated[Literal["batch", "instance"], Flags("Model"), Field(description="Normalisation layers.")] = "batch"
    patch: Annotated[PatchSize, Flags("Model"), Field(description="PatchGAN receptive field (1: PixelGAN).")] = 70
    unet_depth: Annotated[
        int | None, Flags("Model"), Field(ge=1, le=12, description="U-Net levels \\[default: from the crop size, at most 8].")
    ] = None
    dropout: Annotated[
        float,
        Flags("Model"),
        Field(ge=0.0, lt=1.0, description="Dropout in the inner decoder blocks; 0 turns it off (the reference's --no_dropout)."),
    ] = 0.5
    # objective and optimiser
    gan_mode: Annotated[
        Literal["vanilla", "lsgan"], Flags("Loss"), Field(description="vanilla (cross-entropy) or lsgan (least squares).")
    ] = "vanilla"
    l1_weight: Annotated[float, Flags("Loss", "--lambda-L1"), Field(ge=0.0, description="Weight of the L1 term.")] = 100.0
    hole_weight: Annotated[
        float,
        Flags("Loss"),
        Field(ge=0.0, description="With inpaint: weight of the hole's pixels in the L1 term, against the GAN term (the given pixels are kept, so they carry no gradient; 1: each hole pixel weighs as every pixel does without inpaint)."),
    ] = 1.0
    gan_weight: Annotated[float, Flags("Loss"), Field(ge=0.0, description="Weight of the GAN term.")] = 1.0
    lr: Annotated[float, Flags("Optimiser"), Field(gt=0.0, description="Adam learning rate.")] = 2e-4
    beta1: Annotated[float, Flags("Optimiser"), Field(ge=0.0, lt=1.0, description="Adam beta1.")] = 0.5
    beta2: Annotated[float, Flags("Optimiser"), Field(ge=0.0, lt=1.0, description="Adam beta2.")] = 0.999
    # length: constant lr for n_epochs, then linear decay to 0 over n_epochs_decay
    n_epochs: Annotated[int, Flags("Schedule", "--niter"), Field(ge=0, description="Epochs at the initial learning rate.")] = 100
    n_epochs_decay: Annotated[
        int, Flags("Schedule", "--niter-decay"), Field(ge=0, description="Epochs of linear decay to zero after that.")
    ] = 100
    max_epochs: Annotated[
        int | None, Flags("Schedule"), Field(ge=1, description="Stop after this many epochs, at most n_epochs + n_epochs_decay (beyond, the decayed learning rate would fall below 0) \\[default: n_epochs + n_epochs_decay].")
    ] = None
    max_steps: Annotated[int | None, Flags("Schedule"), Field(ge=1, description="Stop after this many steps (wins over epochs).")] = None
    # run
    seed: Annotated[
        Seed, Flags("Checkpoints"), Field(description="Seed for init, data order, crops and dropout: CPU runs repeat bit for bit.")
    ] = 0
    save_freq: Annotated[
        int, Flags("Checkpoints"), Field(ge=1, description="Steps between checkpoints (one is always written at the end).")
    ] = 5000
    log_freq: Annotated[int, Flags("Checkpoints", "--print-freq"), Field(ge=1, description="Steps between rows of losses.csv.")] = 10
    # validation (train --val-dir): which generator is best.pt, when to stop
    val_freq: Annotated[
        int, Flags("Checkpoints"), Field(ge=1, description="Steps between validations on --val-dir (one more at the end); each writes a row of val.csv.")
    ] = 1000
    val_metric: Annotated[
        Literal[VAL_METRICS],  # type: ignore[valid-type]
        Flags("Checkpoints"),
        Field(description="The validation score that picks best.pt: lower l1 or ciede2000 (colorization only), higher psnr or ssim."),
    ] = "l1"
    early_stop: Annotated[
        int | None,
        Flags("Checkpoints"),
        Field(ge=1, description="Stop after this many validations in a row without a better score (generator.pt is written as usual) \\[default: never]."),
    ] = None

    _finite_floats = field_validator("*")(finite_in_float32)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.crop_size > self.load_size:
            raise ValueError(f"crop_size {self.crop_size} is larger than load_size {self.load_size}")
        if self.crop_size < patch_min_size(self.patch):
            raise ValueError(
                f"crop_size {self.crop_size} is too small for a {self.patch}x{self.patch} PatchGAN "
                f"(needs at least {patch_min_size(self.patch)} px); use a smaller patch"
            )
        if self.n_epochs + self.n_epochs_decay == 0:
            raise ValueError("n_epochs and n_epochs_decay are both 0: the schedule has no epoch to train")
        if self.max_epochs and self.max_epochs > self.n_epochs + self.n_epochs_decay:
            raise ValueError(
                f"max_epochs {self.max_epochs} is beyond the schedule (n_epochs {self.n_epochs} + n_epochs_decay "
                f"{self.n_epochs_decay}), where the learning rate would fall below 0; lengthen the schedule instead"
            )
        if self.inpaint and self.lab_colorization:
            raise ValueError("inpaint and lab_colorization exclude each other: the hole is found in the RGB input")
        if self.labels != "none" and self.lab_colorization:
            raise ValueError(f"labels {self.labels} and lab_colorization exclude each other: a colorization model's input is a photo's channels, not a label map")
        if self.val_metric == "ciede2000" and not self.lab_colorization:
            raise ValueError("val_metric ciede2000 is a colour difference, scored for colorization (lab_colorization) only")
        try:
            self.depth()
            if self.hints:  # only then: the Task, which refuses hints without Lab AtoB, imports torch
                _ = self.task
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def task(self) -> Task:
        from pix2pix.task import Task  # torch: not needed to validate options

        return Task(self.direction, self.lab_colorization, inpaint=self.inpaint, hints=self.hints)

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


CGAN_ARCHITECTURE_KEYS = ("nz", "ngf", "ndf")
CGAN_OPTIMISATION_KEYS = ("mode_seeking", "lr", "beta1", "beta2")  # as OPTIMISATION_KEYS; no schedule


class CGANConfig(BaseModel):
    """Options of ``pix2pix cgan train``; the defaults train in about a minute on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mnist_dir: Annotated[
        str | None,
        Flags("Data"),
        Field(description="Folder with MNIST's train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] \\[default: the 1,797 8x8 digits that ship with scikit-learn]."),
    ] = None
    batch_size: Annotated[int, Flags("Data"), Field(ge=1, description="Digits per step.")] = 64
    nz: Annotated[int, Flags("Model"), Field(ge=1, description="Length of the noise vector z (and of the label embedding).")] = 64
    ngf: Annotated[int, Flags("Model"), Field(ge=1, description="Generator filters in its last hidden layer.")] = 32
    ndf: Annotated[int, Flags("Model"), Field(ge=1, description="Discriminator filters in its first layer.")] = 32
    mode_seeking: Annotated[
        float,
        Flags("Loss"),
        Field(ge=0.0, description="Weight of the mode-seeking term (MSGAN) that makes different z draw different digits; 0 is the article's plain objective, which soon draws one image per digit."),
    ] = 0.3
    lr: Annotated[float, Flags("Optimiser"), Field(gt=0.0, description="Adam learning rate.")] = 2e-4
    beta1: Annotated[float, Flags("Optimiser"), Field(ge=0.0, lt=1.0, description="Adam beta1.")] = 0.5
    beta2: Annotated[float, Flags("Optimiser"), Field(ge=0.0, lt=1.0, description="Adam beta2.")] = 0.999
    epochs: Annotated[
        int, Flags("Schedule", "--max-epochs"), Field(ge=1, description="Passes over the digits (30: about a minute on 2 CPU cores for scikit-learn's digits; MNIST is 33x larger).")
    ] = 30
    max_steps: Annotated[int | None, Flags("Schedule"), Field(ge=1, description="Stop after this many steps (wins over epochs).")] = None
    seed: Annotated[Seed, Flags("Checkpoints"), Field(description="Seed for init, data order and noise: CPU runs repeat bit for bit.")] = 0
    save_freq: Annotated[int, Flags("Checkpoints"), Field(ge=1, description="Steps between checkpoints (one is always written at the end).")] = 500
    log_freq: Annotated[int, Flags("Checkpoints"), Field(ge=1, description="Steps between rows of losses.csv.")] = 10
    grid_columns: Annotated[int, Flags("Samples"), Field(ge=1, description="Samples per digit in the sample grids (10 rows, row k = digit k).")] = 10
    eval_per_digit: Annotated[int, Flags("Samples"), Field(ge=1, description="Samples per digit for the conditioning accuracy.")] = 100
    device: DeviceName = "auto"

    _finite_floats = field_validator("*")(finite_in_float32)

    def architecture(self) -> dict:
        # imports torch, which validating options does not need
        from pix2pix.nn.digits import MODEL_KIND

        return {"model": MODEL_KIND, **{key: getattr(self, key) for key in CGAN_ARCHITECTURE_KEYS}}
