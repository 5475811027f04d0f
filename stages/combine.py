"""Stage ``combine``: join A and B images side by side, the one-file pair format pix2pix trains on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import stage_app, user_errors
from .imageop_options import (
    Format,
    ImageFormat,
    OutputDir,
    SkipBad,
    Workers,
    run_image_operation,
)
from .params import ParamsFile, ParamsSection

app = stage_app("Combine A and B images into A|B pairs.")


@app.command("combine")
@user_errors
def combine(
    a_dir: Annotated[
        Path,
        typer.Option(
            "--a_dir", "--a-dir", "--input_dir", "--input-dir", "-a", "-i",
            help="Folder of A images (left half). --input_dir is the reference's name for it.",
            show_default=False,
        ),
    ],
    b_dir: Annotated[
        Path,
        typer.Option("--b_dir", "--b-dir", "-b", help="Folder of B images (right half), same base names.", show_default=False),
    ],
    output_dir: OutputDir,
    workers: Workers = None,
    format: Format = ImageFormat.png,
    skip_bad: SkipBad = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Write A | B for every base name found in both folders (x.jpg pairs with x.png).

    Both images must have the same size; an image without a partner is an error (skipped with [bold]--skip_bad[/]).

    Train AtoB to map A to B, BtoA for the reverse.
    """
    from pix2pix.prep import imageops

    run_image_operation(imageops.combine, imageops.paired_jobs(a_dir, b_dir), output_dir, workers, format, skip_bad)


if __name__ == "__main__":
    app()
