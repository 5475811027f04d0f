"""Stage ``grayscale``: three-channel gray copies, the input side of a colorization pair."""

from __future__ import annotations

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

app = stage_app("Convert images to gray (kept as 3-channel RGB).")


@app.command("grayscale")
@user_errors
def grayscale(
    input_dir: InputDir,
    output_dir: OutputDir,
    workers: Workers = None,
    format: Format = ImageFormat.png,
    skip_bad: SkipBad = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Write each image as gray (ITU-R 601 luma) in three equal channels, so pairs stay RGB | RGB."""
    from pix2pix.prep import imageops

    run_image_operation(imageops.grayscale, imageops.folder_jobs(input_dir), output_dir, workers, format, skip_bad)


if __name__ == "__main__":
    app()
