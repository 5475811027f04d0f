"""Stage ``blank``: white out the centre of square images, the input side of an inpainting pair."""

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

app = stage_app("Blank out the centre of square images (inpainting inputs).")


@app.command("blank")
@user_errors
def blank(
    input_dir: InputDir,
    output_dir: OutputDir,
    fraction: Annotated[
        float, typer.Option("--fraction", min=0.0, max=1.0, help="Side of the white square as a fraction of the width.")
    ] = 0.3,
    workers: Workers = None,
    format: Format = ImageFormat.png,
    skip_bad: SkipBad = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Paint a white square over the centre of each (square) image: side int(FRACTION*W) at int(W/2 - side/2).

    At 256 px and 0.3 that is a 76 px square at offset 90, as in the reference.

    Run [bold]resize[/] first; then [bold]combine[/] the originals (A) with these (B) and train BtoA to inpaint.
    """
    from pix2pix.prep import imageops

    operation = functools.partial(imageops.blank, fraction=fraction)
    run_image_operation(operation, imageops.folder_jobs(input_dir), output_dir, workers, format, skip_bad)


if __name__ == "__main__":
    app()
