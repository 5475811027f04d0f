"""Export a trained generator to ONNX or TorchScript, for use outside this project.

The exported graph takes ``input``: float32 ``(N, C_in, H, W)`` in [-1, 1] (RGB, or L/50 - 1 for
a colorization model; a hint model's takes the hint channels of ``pix2pix.data.hints`` after L)
and returns ``output``: ``(N, C_out, H, W)`` in [-1, 1] (RGB, or ab/110).
Batch and spatial size are dynamic, but H and W must be multiples of 2^depth (32 for a 32 px
crop, 256 for unet_256): pad before (reflect padding works well) and crop after, as
``pix2pix translate`` does. The file's metadata says so, with the direction and channels.
An inpainting model's graph composites as ``translate`` does: ``output`` is ``input`` wherever
the input is not pure white (1.0 in all three channels), the network's output in the hole.

Evaluation forms (``eval_mode``):

- ``eval``: batch norm with the running statistics gathered in training, no dropout. Each
  image's output is independent of the rest of the batch. The usual deployment form.
- ``train``: batch norm normalises each image with its own statistics, as at the paper's test
  time (one image at a time) and as ``translate`` / ``evaluate`` do; dropout is left out so
  that the exported model is deterministic. Each output is again independent of the batch.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.errors import UserError
from pix2pix.files import atomic_write_bytes
from pix2pix.nn.networks import replace_batch_norms
from pix2pix.task import Task

FORMATS = ("onnx", "torchscript")
EXPORT_MODES = ("eval", "train")
ONNX_OPSET = 17
TORCHSCRIPT_METADATA = "pix2pix.json"
NORMALISATION = {
    "eval": "batch norm uses the running statistics from training; no dropout",
    "train": "batch norm uses each input image's own statistics (the paper's test time); no dropout",
}


class PerImageStatisticsNorm(nn.Module):
    """Batch norm that always normalises each image by its own statistics, written as plain tensor ops.

    Equivalent to a ``BatchNorm2d`` in training mode at batch 1 (``evaluation.PerImageBatchNorm``)
    minus the running-statistics update, so it traces and exports the same way in any module mode.
    """

    def __init__(self, norm: nn.BatchNorm2d):
        super().__init__()
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.detach().clone().view(1, -1, 1, 1))
        self.bias = nn.Parameter(norm.bias.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        variance = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(variance + self.eps) * self.weight + self.bias


class Composited(nn.Module):
    """The generator followed by ``Task.composite``: what an inpainting model answers, in one graph."""

    def __init__(self, generator: nn.Module, task: Task):
        super().__init__()
        self.generator, self.task = generator, task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.task.composite(x, self.generator(x))


def evaluation_form(generator: nn.Module, mode: str, task: Task) -> nn.Module:
    """A CPU copy of the generator in the chosen evaluation form, composited for inpainting, ready to trace."""
    if mode not in EXPORT_MODES:
        raise UserError(f"export mode {mode!r}: expected eval or train")
    model = copy.deepcopy(generator).cpu().eval()
    if mode == "train":
        replace_batch_norms(model, PerImageStatisticsNorm)
    if task.inpaint:
        model = Composited(model, task)
    return model.requires_grad_(False)


def export_metadata(config: dict, generator: nn.Module, mode: str) -> dict[str, str]:
    """What a user of the exported file needs to know, as string pairs (ONNX ``metadata_props``)."""
    task = Task.of(config)
    in_channels, out_channels = task.channels
    if task.lab_colorization:
        input_kind, output_kind = ("L/50 - 1", "ab/110") if task.direction == "AtoB" else ("ab/110", "L/50 - 1")
        if task.hints:
            input_kind += ", then colour hints: their ab/110 (2 channels, 0 where none) and mask (1 where hinted)"
    else:
        input_kind = output_kind = "RGB/127.5 - 1"
    return {
        "producer": ckpt.FORMAT,
        "direction": task.direction,
        "lab_colorization": json.dumps(task.lab_colorization),
        "inpaint": json.dumps(task.inpaint),
        "hints": json.dumps(task.hints),
        "input": f"float32 (N, {in_channels}, H, W): {input_kind}",
        "output": f"float32 (N, {out_channels}, H, W) in [-1, 1]: {output_kind}" + (", the input's own outside its pure-white hole" if task.inpaint else ""),
        "spatial_multiple": str(2**generator.depth),
        "crop_size": str(config["crop_size"]),
        "eval_mode": mode,
        "normalisation": NORMALISATION[mode],
    }


def export_generator(generator: nn.Module, config: dict, path: Path, fmt: str, mode: str = "eval") -> dict[str, str]:
    """Write the generator to ``path`` (atomically) as ONNX or TorchScript; returns the metadata written."""
    if fmt not in FORMATS:
        raise UserError(f"export format {fmt!r}: expected onnx or torchscript")
    task = Task.of(config)
    model = evaluation_form(generator, mode, task)
    metadata = export_metadata(config, generator, mode)
    in_channels = task.channels[0]
    example = torch.zeros(1, in_channels, config["crop_size"], config["crop_size"])
    data = _onnx_bytes(model, example, metadata) if fmt == "onnx" else _torchscript_bytes(model, example, metadata)
    atomic_write_bytes(Path(path), data)
    return metadata


def _onnx_bytes(model: nn.Module, example: torch.Tensor, metadata: dict[str, str]) -> bytes:
    """The TorchScript-based exporter: it works offline (the dynamo one needs onnxscript)."""
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install onnx (or install with the [dev] extra)") from None
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces its retirement
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET, input_names=["input"],
            output_names=["output"], dynamic_axes={"input": dynamic, "output": dynamic},
        )  # fmt: skip
    proto = onnx.load_from_string(buffer.getvalue())
    proto.doc_string = f"pix2pix generator ({metadata['normalisation']}); H and W must be multiples of {metadata['spatial_multiple']}"
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def _torchscript_bytes(model: nn.Module, example: torch.Tensor, metadata: dict[str, str]) -> bytes:
    """Traced: the U-Net has no data-dependent control flow, so the trace serves any batch and size."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance mode, still loadable
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata, indent=2)})
    return buffer.getvalue()
