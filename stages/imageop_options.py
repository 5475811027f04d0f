"""What the image-operation stages (resize, blank, combine, grayscale, edges) share: their common
options, defined once, and the call that runs an operation over a folder and reports on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from pix2pix.options import Flags


class ImageOpOptions(BaseModel):
    """Options every image operation takes."""

    model_config = ConfigDict(extra="forbid")

    workers: Annotated[int | None, Flags("Speed", "-j"), Field(ge=1, description="Worker processes \\[default: all CPU cores; 1 = no pool].")] = None
    format: Annotated[
        Literal["png", "jpg", "webp", "bmp", "tiff"], Flags("Data"), Field(description="Output image format (files are named NAME.<format>).")
    ] = "png"
    skip_bad: Annotated[
        bool,
        Flags("Data"),
        Field(description="Skip unreadable or unsuitable images and list them in OUTPUT_DIR/skipped.txt, instead of stopping with no output."),
    ] = False


class ResizeOptions(ImageOpOptions):
    size: Annotated[int, Flags("Data"), Field(ge=1, description="Side of the square output, in pixels.")] = 256
    pad: Annotated[bool, Flags("Data"), Field(description="Pad to a square with black instead of centre-cropping.")] = False


class BlankOptions(ImageOpOptions):
    fraction: Annotated[float, Flags("Data"), Field(ge=0.0, le=1.0, description="Side of the white square as a fraction of the width.")] = 0.3


class EdgesOptions(ImageOpOptions):
    sigma: Annotated[float, Flags("Data"), Field(ge=0.0, description="Gaussian blur before Canny; larger keeps only the main contours.")] = 2.0


InputDir = Annotated[
    Path,
    typer.Option(
        "--input-dir", "-i",
        help="Folder of input images (JPEG, PNG, WebP, BMP, TIFF; EXIF rotation applied, any mode read as 8-bit RGB).",
        show_default=False,
        rich_help_panel="Paths",
    ),
]  # fmt: skip
OutputDir = Annotated[
    Path,
    typer.Option(
        "--output-dir", "-o",
        help="Folder to write. It appears complete or not at all: an existing one is replaced only on success, and only if pix2pix wrote it.",
        show_default=False,
        rich_help_panel="Paths",
    ),
]  # fmt: skip
def run_image_operation(
    operation: Callable,
    jobs: Sequence,
    output_dir: Path,
    options: ImageOpOptions,
) -> None:
    """Run ``operation`` over ``jobs`` (from ``pix2pix.prep.imageops``) with a progress bar, then report."""
    from pix2pix.prep.imageops import SKIPPED_LIST, process_folder

    from .progress import progress_bar

    with progress_bar(str(output_dir)) as update:
        result = process_folder(
            operation, jobs, output_dir, workers=options.workers, format=options.format, skip_bad=options.skip_bad, progress=update
        )
    for message in result.skipped:
        typer.echo(f"skipped: {message}", err=True)
    rate = result.written / result.seconds if result.seconds else 0.0
    typer.echo(f"wrote {result.written} images to {output_dir} in {result.seconds:.1f} s ({rate:.1f} images/s)")
    if result.skipped:
        typer.echo(f"skipped {len(result.skipped)} bad inputs, listed in {Path(output_dir) / SKIPPED_LIST}")
