"""`pix2pix export`: the trained generator as an ONNX or TorchScript file, to run without this project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import WhichCheckpoint, fail, stage_app, user_errors

app = stage_app(__doc__)


@app.command("export")
@user_errors
def export(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train` or `pix2pix import-checkpoint`, or a generator.pt / checkpoint.pt file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx (opset 17; needs the onnx package) or torchscript (load with torch.jit.load).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (atomically), e.g. generator.onnx or generator.ts.")],
    eval_mode: Annotated[str, typer.Option("--eval-mode", help="eval: batch norm with the running statistics from training, no dropout (outputs independent of the batch). train: batch norm with each input batch's own statistics, as at the paper's test time, but no dropout (deterministic); translate one image per call to match the paper.")] = "eval",
    which: WhichCheckpoint = None,
) -> None:
    """Export the generator in evaluation form, with dynamic batch and spatial size.

    Input "input": float32 (N, C, H, W) in [-1, 1] (RGB/127.5 - 1, or L/50 - 1 for colorization); output "output": the same layout (RGB, or ab/110). H and W must be multiples of 2^depth (256 for unet_256, 32 for a 32 px crop): reflect-pad, run, crop back. The direction, channels, multiple and form are in the file's metadata (ONNX metadata_props; TorchScript extra file pix2pix.json).
    """
    from pix2pix.checkpoint import resolve
    from pix2pix.infer.export import EXPORT_MODES, FORMATS, export_generator
    from pix2pix.infer.load import generator_from_checkpoint

    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r}: expected {' or '.join(FORMATS)}")
    if eval_mode not in EXPORT_MODES:
        raise fail(f"--eval_mode {eval_mode!r}: expected eval or train")
    if output.is_dir():
        raise fail(f"{output}: is a folder; give a file name")
    generator, config = generator_from_checkpoint(resolve(checkpoint, which), "cpu")
    metadata = export_generator(generator, config, output, fmt, eval_mode)
    typer.echo(f"{fmt} generator ({metadata['eval_mode']} form: {metadata['normalisation']}) -> {output}")
    typer.echo(f"input {metadata['input']}; H and W must be multiples of {metadata['spatial_multiple']}")


if __name__ == "__main__":
    app()
