"""Stage ``resize``: make every image the same square size (the reference's ``process.py resize``)."""

from __future__ import annotations

import functools

from .common import stage_app, user_errors
from .imageop_options import (
    InputDir,
    OutputDir,
    ResizeOptions,
    run_image_operation,
)
from .options import with_options
from .params import ParamsFile, ParamsSection

app = stage_app("Resize images to squares.")


@app.command("resize")
@user_errors
@with_options(ResizeOptions)
def resize(
    input_dir: InputDir,
    output_dir: OutputDir,
    options: ResizeOptions,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Centre-crop each image to a square (or [bold]--pad[/] it with black), then scale it to SIZE x SIZE.

    Shrinking averages areas (no aliasing of thin lines); enlarging is bicubic.
    """
    from pix2pix.prep import imageops

    operation = functools.partial(imageops.resize, size=options.size, pad=options.pad)
    run_image_operation(operation, imageops.folder_jobs(input_dir), output_dir, options)


if __name__ == "__main__":
    app()
