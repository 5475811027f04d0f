"""Options shared across layers and commands, and how an option is spelt on the command line.

Config models (pydantic) are the one declaration of every option: name, type, default, help,
choices and range; the commands, params.yaml's check and its JSON schema are generated from them.
``Flags``, placed in a field's ``Annotated`` metadata, adds only what the command line needs
beyond that: the help panel and the original project's spellings, which keep working unshown.
Here live the options several commands share: the device and its speed options (train,
evaluate, translate), how a trained generator runs (evaluate, translate), and the seed, device
and eval-mode types.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Flags:
    def __init__(self, panel: str, *aliases: str):
        self.panel, self.aliases = panel, aliases


SEED_MAX = 2**32 - 1  # keeps epoch_seed inside torch's 64-bit seeds


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle and augmentation: a pure function of (seed, epoch), so a resumed
    run draws what an uninterrupted one would."""
    return seed * 1_000_003 + epoch

Switch = Literal["auto", "on", "off"]


DeviceName = Annotated[str, Flags("Speed"), Field(description="auto, cpu, cuda or cuda:N.")]
EvalMode = Annotated[
    Literal["train", "eval"],
    Flags("Model"),
    Field(description="train: dropout on and each image's own batch-norm statistics, as in the paper and the reference's test.py; eval: running statistics, no dropout."),
]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


class DeviceOptions(BaseModel):
    """Where and how fast the networks run: train, evaluate and translate take these.

    Speed options change precision and speed, never the model, so a run may resume with others.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    device: DeviceName = "auto"
    amp: Annotated[
        Literal["auto", "off", "bf16", "fp16"],
        Flags("Speed"),
        Field(description="Mixed precision: auto (bf16 on GPUs that have it, else fp16 with loss scaling; off on CPU), off, bf16 or fp16."),
    ] = "auto"
    tf32: Annotated[Switch, Flags("Speed"), Field(description="TF32 matmuls and convolutions on NVIDIA GPUs: auto (on with CUDA), on or off.")] = "auto"
    channels_last: Annotated[Switch, Flags("Speed"), Field(description="NHWC memory format: auto (on with CUDA; measured slower on CPU), on or off.")] = "auto"
    cudnn_benchmark: Annotated[Switch, Flags("Speed"), Field(description="Let cuDNN time and pick the fastest kernels: auto (on with CUDA), on or off.")] = "auto"
    compile: Annotated[bool, Flags("Speed"), Field(description="torch.compile the networks: faster steps on GPUs after a compile of a minute or so.")] = False
    cpu_kernels: Annotated[
        Switch,
        Flags("Speed"),
        Field(description="The project's own CPU convolutions (Winograd, matrix-form): auto (on for CPU; PIX2PIX_CPU_KERNELS=off turns them off), on or off."),
    ] = "auto"

    def acceleration(self):
        """The selected device and its ``pix2pix.nn.device.Acceleration``."""
        # imports torch, which validating options does not need
        from pix2pix.nn.device import resolve, select_device

        return resolve(
            select_device(self.device), self.amp, self.tf32, self.channels_last, self.cudnn_benchmark, self.compile, self.cpu_kernels
        )


class InferenceOptions(DeviceOptions):
    """How a trained generator is run by evaluate and translate."""

    eval_mode: EvalMode = "train"
    seed: Annotated[Seed, Flags("Model"), Field(description="Seed for test-time dropout.")] = 0
    batch_size: Annotated[
        int,
        Flags("Data"),
        Field(ge=1, description="Same-sized images (or tiles) per forward pass. In train mode each keeps its own batch-norm statistics, so only the order of dropout draws depends on it."),
    ] = 8
