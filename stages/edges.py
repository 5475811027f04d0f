"""Stage ``edges``: edge maps like the edges2shoes inputs, made with Canny (no Caffe/HED needed)."""

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

app = stage_app("Draw Canny edge maps (black edges on white).")


@app.command("edges")
@user_errors
def edges(
    input_dir: InputDir,
    output_dir: OutputDir,
    sigma: Annotated[
        float, typer.Option("--sigma", min=0.0, help="Gaussian blur before Canny; larger keeps only the main contours.")
    ] = 2.0,
    workers: Workers = None,
    format: Format = ImageFormat.png,
    skip_bad: SkipBad = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Write each image's Canny edges (scikit-image) as black lines on white, in three channels.

    The reference used HED through Caffe; Canny needs nothing extra and gives the same kind of input.
    """
    from pix2pix.prep import imageops

    operation = functools.partial(imageops.edges, sigma=sigma)
    run_image_operation(operation, imageops.folder_jobs(input_dir), output_dir, workers, format, skip_bad)


if __name__ == "__main__":
    app()
