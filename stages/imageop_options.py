"""What the image-operation stages (resize, blank, combine, grayscale, edges) share: their common
options, defined once, and the call that runs an operation over a folder and reports on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class ImageFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    webp = "webp"
    bmp = "bmp"
    tiff = "tiff"


InputDir = Annotated[
    Path,
    typer.Option(
        "--input_dir", "--input-dir", "-i",
        help="Folder of input images (JPEG, PNG, WebP, BMP, TIFF; EXIF rotation applied, any mode read as 8-bit RGB).",
        show_default=False,
    ),
]  # fmt: skip
OutputDir = Annotated[
    Path,
    typer.Option(
        "--output_dir", "--output-dir", "-o",
        help="Folder to write. It appears complete or not at all: an existing one is replaced only on success.",
        show_default=False,
    ),
]  # fmt: skip
Workers = Annotated[
    int | None,
    typer.Option("--workers", "-j", min=1, help="Worker processes \\[default: all CPU cores; 1 = no pool].", show_default=False),
]
Format = Annotated[ImageFormat, typer.Option("--format", help="Output image format (files are named NAME.<format>).")]
SkipBad = Annotated[
    bool,
    typer.Option(
        "--skip_bad", "--skip-bad",
        help="Skip unreadable or unsuitable images and list them in OUTPUT_DIR/skipped.txt, instead of stopping with no output.",
    ),
]  # fmt: skip


def run_image_operation(
    operation: Callable,
    jobs: Sequence,
    output_dir: Path,
    workers: int | None,
    format: ImageFormat,
    skip_bad: bool,
) -> None:
    """Run ``operation`` over ``jobs`` (from ``pix2pix.prep.imageops``) with a progress bar, then report."""
    from pix2pix.prep.imageops import SKIPPED_LIST, process_folder

    from .progress import progress_bar

    with progress_bar(str(output_dir)) as update:
        result = process_folder(
            operation, jobs, output_dir, workers=workers, format=format.value, skip_bad=skip_bad, progress=update
        )
    for message in result.skipped:
        typer.echo(f"skipped: {message}", err=True)
    rate = result.written / result.seconds if result.seconds else 0.0
    typer.echo(f"wrote {result.written} images to {output_dir} in {result.seconds:.1f} s ({rate:.1f} images/s)")
    if result.skipped:
        typer.echo(f"skipped {len(result.skipped)} bad inputs, listed in {Path(output_dir) / SKIPPED_LIST}")
