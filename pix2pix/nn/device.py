"""The device and its speed options: device selection, mixed precision, TF32, channels_last,
cuDNN autotuning, torch.compile, the hand-made CPU convolutions.

Each option is ``auto`` by default: on for CUDA, where they pay, off on the CPU, where each was
measured slower on the AVX2 machine this project is tested on (benchmarks/README.md:
channels_last 0.8x, torch.compile 0.7x after a 50-66 s compile, bf16 autocast 7-44x slower
without AVX-512 BF16). Asked for explicitly, every option also runs on the CPU.

None of them changes the model or the optimisation, only the arithmetic's precision and speed;
with them on, a CUDA run is no longer bit-reproducible (cuDNN autotuning picks kernels by
timing). CPU defaults keep CPU runs bit-identical for a seed.

The hand-made CPU convolutions (``pix2pix.nn.cpu_kernels``) are the one option on by default on
the CPU, where they were measured faster, and off on CUDA, where they would fall back to torch's
ops anyway. They compute the same functions up to float rounding. ``cpu_kernels`` or, when it
is ``auto``, the environment variable ``PIX2PIX_CPU_KERNELS`` (on, off, auto) switches them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from pix2pix.errors import UserError
from pix2pix.nn.cpu_kernels import use_cpu_kernels

AMP_MODES = ("auto", "off", "bf16", "fp16")
SWITCHES = ("auto", "on", "off")
CPU_KERNELS_VARIABLE = "PIX2PIX_CPU_KERNELS"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _check_switch(name: str, value: str) -> None:
    if value not in SWITCHES:
        raise UserError(f"{name} {value!r}: expected one of {', '.join(SWITCHES)}")


def _switch(name: str, value: str, auto: bool) -> bool:
    _check_switch(name, value)
    return auto if value == "auto" else value == "on"


@dataclass(frozen=True)
class Acceleration:
    """What the training and inference loops do on ``device``; build it with ``resolve``."""

    device: torch.device
    amp_dtype: torch.dtype | None = None  # autocast to this, or full fp32 when None
    channels_last: bool = False
    compile: bool = False
    cpu_kernels: str = "auto"  # on, off, or auto: see ``uses_cpu_kernels``

    def __post_init__(self):
        _check_switch("cpu_kernels", self.cpu_kernels)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def uses_cpu_kernels(self) -> bool:
        """Whether ``prepare`` swaps in the hand-made CPU convolutions: ``auto`` defers to
        ``PIX2PIX_CPU_KERNELS`` when it is set, else means on for the CPU alone."""
        setting = self.cpu_kernels if self.cpu_kernels != "auto" else os.environ.get(CPU_KERNELS_VARIABLE, "auto")
        return _switch(CPU_KERNELS_VARIABLE, setting, self.device.type == "cpu")

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, a pass-through unless the loop runs in fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_grad_scaler)

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move a network to the device in the chosen memory format, with the CPU convolutions
        swapped in when they are on (in place, so callers may ignore the result; returns it)."""
        module.to(self.device, memory_format=self.memory_format)
        return use_cpu_kernels(module) if self.uses_cpu_kernels else module

    def compiled(self, module: nn.Module) -> nn.Module:
        """The module to call: compiled by torch.compile when asked for, else the module itself."""
        return torch.compile(module) if self.compile else module

    def for_inference(self, module: nn.Module) -> nn.Module:
        """A generator ready to translate: prepared as for training, then compiled when asked."""
        return self.compiled(self.prepare(module))

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """A CPU batch on the device: through pinned memory and an asynchronous copy on CUDA."""
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True, memory_format=self.memory_format)
        return batch.to(self.device, memory_format=self.memory_format)


def resolve(
    device: torch.device,
    amp: str = "auto",
    tf32: str = "auto",
    channels_last: str = "auto",
    cudnn_benchmark: str = "auto",
    compile: bool = False,
    cpu_kernels: str = "auto",
) -> Acceleration:
    """Turn the options into an ``Acceleration``; applies the process-wide TF32 and cuDNN settings.

    ``amp``: auto = bf16 on GPUs that support it, else fp16 (with a gradient scaler); off on CPU.
    ``cpu_kernels``: auto = ``PIX2PIX_CPU_KERNELS`` when set, else on for the CPU, off for CUDA.
    """
    cuda = device.type == "cuda"
    if amp not in AMP_MODES:
        raise UserError(f"amp {amp!r}: expected one of {', '.join(AMP_MODES)}")
    if amp == "auto":
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "off"
    use_tf32 = _switch("tf32", tf32, cuda)
    if cuda or tf32 != "auto":
        precision = "tf32" if use_tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    benchmark = _switch("cudnn_benchmark", cudnn_benchmark, cuda)
    if cuda:
        torch.backends.cudnn.benchmark = benchmark
    return Acceleration(device, _DTYPES.get(amp), _switch("channels_last", channels_last, cuda), compile, cpu_kernels)


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available")
    return device
