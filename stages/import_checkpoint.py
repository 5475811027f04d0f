"""`pix2pix import-checkpoint`: use a generator trained with pytorch-CycleGAN-and-pix2pix here.

Converts ``latest_net_G.pth`` (a ``unet_256`` or ``unet_128`` generator, batch or instance norm,
with or without DataParallel's ``module.`` prefixes) into RUN/generator.pt, which `pix2pix
translate`, `evaluate`, `serve` and `export` accept. Channels, ngf, depth and norm are read from
the tensor shapes; the direction is not in the file, so give it with --direction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import fail, stage_app, user_errors

app = stage_app(__doc__)


@app.command("import-checkpoint")
@user_errors
def import_checkpoint(
    source: Annotated[Path, typer.Argument(help="The reference's generator file, e.g. checkpoints/facades_label2photo_pretrained/latest_net_G.pth.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="New run folder for generator.pt and options.json.")],
    direction: Annotated[Optional[str], typer.Option("--direction", "--which-direction", help="AtoB or BtoA, as the model was trained (facades label2photo: BtoA) \\[default: AtoB; colorization models: from the channels].")] = None,
    lab_colorization: Annotated[bool, typer.Option("--lab-colorization", help="Expect a colorization model (L -> ab, `--model colorization`); 1 -> 2 channel files are treated as one anyway.")] = False,
    dropout: Annotated[float, typer.Option(help="Dropout rate the model was trained with: 0.5, or 0 for --no_dropout (matters only with --eval_mode train).")] = 0.5,
) -> None:
    """Convert a pytorch-CycleGAN-and-pix2pix U-Net generator into this project's checkpoint format."""
    from pix2pix.infer.reference_import import import_reference
    from pix2pix.nn.networks import count_parameters
    from pix2pix.task import DIRECTIONS

    if direction is not None and direction not in DIRECTIONS:
        raise fail(f"--direction {direction!r}: expected AtoB or BtoA")
    if not 0 <= dropout < 1:
        raise fail(f"--dropout {dropout}: must be in [0, 1)")
    generator, config = import_reference(source, output_dir, direction, lab_colorization, dropout)
    kind = "Lab colorization" if config.lab_colorization else "RGB"
    parameters = count_parameters(generator)
    typer.echo(
        f"{source}: {config.unet_depth}-level U-Net (unet_{config.crop_size}), ngf {config.ngf}, {config.norm} norm, "
        f"{kind} {config.direction}, {parameters:,} parameters -> {output_dir}"
    )


if __name__ == "__main__":
    app()
