"""Stage ``edges``: edge maps like the edges2shoes inputs, made with Canny (no Caffe/HED needed)."""

from __future__ import annotations

import functools

from .common import stage_app, user_errors
from .imageop_options import (
    EdgesOptions,
    InputDir,
    OutputDir,
    run_image_operation,
)
from .options import with_options
from .params import ParamsFile, ParamsSection

app = stage_app("Draw Canny edge maps (black edges on white).")


@app.command("edges")
@user_errors
@with_options(EdgesOptions)
def edges(
    input_dir: InputDir,
    output_dir: OutputDir,
    options: EdgesOptions,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Write each image's Canny edges (scikit-image) as black lines on white, in three channels.

    The reference used HED through Caffe; Canny needs nothing extra and gives the same kind of input.
    """
    from pix2pix.prep import imageops

    operation = functools.partial(imageops.edges, sigma=options.sigma)
    run_image_operation(operation, imageops.folder_jobs(input_dir), output_dir, options)


if __name__ == "__main__":
    app()
