"""`pix2pix translate`: run a trained model on new images that have no targets.

Writes OUT/NAME.png for each input, at the input's own size. Direction and colorization come
from the checkpoint, so nothing from training has to be repeated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import fail, stage_app, user_errors
from stages.device_options import (
    Amp,
    ChannelsLast,
    Compile,
    CudnnBenchmark,
    Device,
    Tf32,
    acceleration,
)
from stages.progress import counting_bar

app = stage_app(__doc__)


@app.command("translate")
@user_errors
def translate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train` or `pix2pix import-checkpoint`, or a generator.pt / checkpoint.pt file.")],
    input_path: Annotated[Path, typer.Option("--input", "--input-dir", "--input_dir", "-i", help="An image, or a folder of images (just inputs: no A|B pairs).")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "--output_dir", "-o", help="Folder for OUT/NAME.png (created; each file is written atomically).")],
    eval_mode: Annotated[str, typer.Option("--eval-mode", "--eval_mode", help="train: dropout on and each image's (or tile's) own batch-norm statistics, as in the paper; eval: running statistics, no dropout.")] = "train",
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", help="Same-sized images (or tiles) per forward pass. Each keeps its own batch-norm statistics, so in train mode only the order of dropout draws depends on it.")] = 8,
    max_side: Annotated[int, typer.Option("--max-side", "--max_side", help="Images with a longer side are translated in overlapping tiles of this size and blended, which bounds the network's memory. Best a multiple of 2^depth (256 for unet_256).")] = 1024,
    overlap: Annotated[int, typer.Option(help="Tile overlap in pixels, blended with linear ramps (at most half of --max-side).")] = 64,
    color_side: Annotated[Optional[int], typer.Option("--color-side", "--color_side", help="Colorization: the network sees the L channel shrunk to fit this side; the ab it predicts is upsampled onto the full-resolution L \\[default: the trained crop size].")] = None,
    seed: Annotated[int, typer.Option(help="Seed for test-time dropout.")] = 0,
    device: Device = "auto",
    amp: Amp = "auto",
    tf32: Tf32 = "auto",
    channels_last: ChannelsLast = "auto",
    cudnn_benchmark: CudnnBenchmark = "auto",
    compile: Compile = False,
) -> None:
    """Translate an image or a folder of images of any size and aspect ratio."""
    from pix2pix.data.images import list_images
    from pix2pix.infer.evaluate import EVAL_MODES
    from pix2pix.infer.translate import Translator, translate_files

    if eval_mode not in EVAL_MODES:
        raise fail(f"--eval_mode {eval_mode!r}: expected train or eval")
    for name, value in (("--batch_size", batch_size), ("--max_side", max_side), ("--color_side", color_side)):
        if value is not None and value < 1:
            raise fail(f"{name} {value}: must be positive")
    if input_path.is_dir():
        paths = list_images(input_path)
    elif input_path.is_file():
        paths = [input_path]
    else:
        raise fail(f"{input_path}: no such image or folder")
    accel = acceleration(device, amp, tf32, channels_last, cudnn_benchmark, compile)
    translator = Translator.from_checkpoint(
        checkpoint, accel.device, eval_mode, color_side, accel, max_side=max_side, overlap=overlap, batch_size=batch_size
    )
    with counting_bar("translating", len(paths)) as advance:
        translate_files(translator, paths, output_dir, seed, progress=advance)
    typer.echo(f"{len(paths)} images -> {output_dir}")


if __name__ == "__main__":
    app()
