"""`pix2pix translate`: run a trained model on new images that have no targets.

Writes OUT/NAME.png for each input, at the input's own size. Direction and colorization come
from the checkpoint, so nothing from training has to be repeated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from pix2pix.options import Flags, InferenceOptions
from stages.common import WhichCheckpoint, fail, stage_app, user_errors
from stages.options import with_options
from stages.progress import counting_bar

app = stage_app(__doc__)


class TranslateOptions(InferenceOptions):
    max_side: Annotated[
        int,
        Flags("Data"),
        Field(ge=1, description="Images with a longer side are translated in overlapping tiles of this size and blended, which bounds the network's memory. Best a multiple of 2^depth (256 for unet_256)."),
    ] = 1024
    overlap: Annotated[int, Flags("Data"), Field(ge=0, description="Tile overlap in pixels, blended with linear ramps (at most half of --max-side).")] = 64
    color_side: Annotated[
        int | None,
        Flags("Data"),
        Field(ge=1, description="Colorization: the network sees the L channel shrunk to fit this side; the ab it predicts is upsampled onto the full-resolution L \\[default: the trained crop size]."),
    ] = None


@app.command("translate")
@user_errors
@with_options(TranslateOptions)
def translate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train` or `pix2pix import-checkpoint`, or a generator.pt / checkpoint.pt file.", rich_help_panel="Paths")],
    input_path: Annotated[Path, typer.Option("--input", "--input-dir", "-i", help="An image, or a folder of images (just inputs: no A|B pairs).", rich_help_panel="Paths")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for OUT/NAME.png (created, or one pix2pix wrote; each file is written atomically).", rich_help_panel="Paths")],
    options: TranslateOptions,
    hints_file: Annotated[
        Path | None,
        typer.Option(
            "--hints",
            help='Colour hints for a model trained with --hints: a JSON list of {"x": int, "y": int, "color": "#rrggbb"} (optionally "size": px) in the input image\'s own pixels; for a folder, an object mapping file names to such lists \\[default: none: the model colorizes alone].',
            rich_help_panel="Paths",
        ),
    ] = None,
    which: WhichCheckpoint = None,
) -> None:
    """Translate an image or a folder of images of any size and aspect ratio."""
    from pix2pix.checkpoint import resolve
    from pix2pix.data.hints import read_hints_file
    from pix2pix.data.images import list_images
    from pix2pix.files import check_output_folder
    from pix2pix.infer.translate import NO_HINTS, Translator, output_paths, translate_files

    if input_path.is_dir():
        paths = list_images(input_path)
    elif input_path.is_file():
        paths = [input_path]
    else:
        raise fail(f"{input_path}: no such image or folder")
    output_paths(paths, output_dir)  # refuses clashing names before the model is loaded
    check_output_folder(output_dir)
    hints = read_hints_file(hints_file, paths, input_path.is_dir()) if hints_file else None
    accel = options.acceleration()
    translator = Translator.from_checkpoint(
        resolve(checkpoint, which), accel.device, options.eval_mode, options.color_side, accel,
        max_side=options.max_side, overlap=options.overlap, batch_size=options.batch_size,
    )  # fmt: skip
    if hints and not translator.task.hints:
        raise fail(f"{hints_file}: {checkpoint} {NO_HINTS}")
    with counting_bar("translating", len(paths)) as advance:
        translate_files(translator, paths, output_dir, options.seed, progress=advance, hints=hints)
    typer.echo(f"{len(paths)} images -> {output_dir}")


if __name__ == "__main__":
    app()
