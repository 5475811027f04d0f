"""The device speed options of train, evaluate and translate (see ``pix2pix.device``), defined once."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Amp = Annotated[
    str,
    typer.Option(help="Mixed precision: auto (bf16 on GPUs that have it, else fp16 with loss scaling; off on CPU), off, bf16 or fp16."),
]
Tf32 = Annotated[str, typer.Option(help="TF32 matmuls and convolutions on NVIDIA GPUs: auto (on with CUDA), on or off.")]
ChannelsLast = Annotated[
    str,
    typer.Option("--channels-last", "--channels_last", help="NHWC memory format: auto (on with CUDA; measured slower on CPU), on or off."),
]
CudnnBenchmark = Annotated[
    str,
    typer.Option("--cudnn-benchmark", "--cudnn_benchmark", help="Let cuDNN time and pick the fastest kernels: auto (on with CUDA), on or off."),
]
Compile = Annotated[
    bool,
    typer.Option("--compile/--no-compile", help="torch.compile the networks: faster steps on GPUs after a compile of a minute or so."),
]


def acceleration(device: str, amp: str, tf32: str, channels_last: str, cudnn_benchmark: str, compile: bool):
    """The selected device and its ``Acceleration``."""
    from pix2pix.device import resolve, select_device

    return resolve(select_device(device), amp, tf32, channels_last, cudnn_benchmark, compile)
