"""Stage ``resize``: make every image the same square size (the reference's ``process.py resize``)."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from .common import stage_app, user_errors
from .imageop_options import (
    Format,
    ImageFormat,
    InputDir,
    OutputDir,
    SkipBad,
    Workers,
    run_image_operation,
)
from .params import ParamsFile, ParamsSection

app = stage_app("Resize images to squares.")


@app.command("resize")
@user_errors
def resize(
    input_dir: InputDir,
    output_dir: OutputDir,
    size: Annotated[int, typer.Option("--size", min=1, help="Side of the square output, in pixels.")] = 256,
    pad: Annotated[bool, typer.Option("--pad", help="Pad to a square with black instead of centre-cropping.")] = False,
    workers: Workers = None,
    format: Format = ImageFormat.png,
    skip_bad: SkipBad = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Centre-crop each image to a square (or [bold]--pad[/] it with black), then scale it to SIZE x SIZE.

    Shrinking averages areas (no aliasing of thin lines); enlarging is bicubic.
    """
    from pix2pix.prep import imageops

    operation = functools.partial(imageops.resize, size=size, pad=pad)
    run_image_operation(operation, imageops.folder_jobs(input_dir), output_dir, workers, format, skip_bad)


if __name__ == "__main__":
    app()
