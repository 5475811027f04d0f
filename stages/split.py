"""Stage ``split``: train/val/test folders, copied or hard-linked; the input folder is only read."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pix2pix.errors import UserError
from pix2pix.options import Flags

from .common import stage_app, user_errors
from .imageop_options import InputDir, OutputDir
from .options import with_options
from .params import ParamsFile, ParamsSection

app = stage_app("Split a folder of images into train/val/test.")


class SplitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train_frac: Annotated[float, Flags("Data"), Field(ge=0.0, le=1.0, description="Share of images for training.")] = 0.8
    val_frac: Annotated[float | None, Flags("Data"), Field(ge=0.0, le=1.0, description="Share for validation \\[default: the rest, 0.2].")] = None
    test_frac: Annotated[float, Flags("Data"), Field(ge=0.0, le=1.0, description="Share for testing.")] = 0.0
    seed: Annotated[int, Flags("Data"), Field(ge=0, description="Seed of the shuffle; the same seed gives the same split.")] = 0
    group_by: Annotated[
        str | None,
        Flags("Data"),
        Field(description="Regular expression on file names without suffix; files with the same key (first group, or the whole match) "
              r"stay in one split. E.g. '^(.+)_\d+$' keeps astronaut_001.png and astronaut_002.png together."),
    ] = None
    link: Annotated[bool, Flags("Data"), Field(description="Hard-link instead of copying (falls back to copying across filesystems).")] = False

    @model_validator(mode="after")
    def _shares_add_up(self) -> "SplitOptions":
        from pix2pix.prep.split import split_fractions

        try:
            split_fractions(self.train_frac, self.val_frac, self.test_frac)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return self


@app.command("split")
@user_errors
@with_options(SplitOptions)
def split(
    input_dir: InputDir,
    output_dir: OutputDir,
    options: SplitOptions,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Write OUTPUT_DIR/train, val and test (those with a non-zero share), deterministically for a seed.

    Counts follow the reference: int(TRAIN_FRAC*N) train, int(TEST_FRAC*N) test, the rest val.

    An INPUT_DIR that comes split (train/, val/, test/ folders, like the pix2pix datasets) keeps its own splits.

    Unlike the reference, files are copied (or linked), never moved.
    """
    from pix2pix.prep.split import split_folder

    from .progress import progress_bar

    with progress_bar(str(output_dir)) as update:
        result = split_folder(
            input_dir, output_dir, train_frac=options.train_frac, val_frac=options.val_frac, test_frac=options.test_frac,
            seed=options.seed, group_by=options.group_by, link=options.link, progress=update,
        )  # fmt: skip
    counts = ", ".join(f"{name} {count}" for name, count in result.counts.items())
    how = "linked" if result.linked else "copied"
    groups = f" in {result.groups} groups" if options.group_by and not result.kept else ""
    kept = " (the input's own splits; the fractions, seed and groups do not apply)" if result.kept else ""
    typer.echo(f"{how} {sum(result.counts.values())} images{groups} into {output_dir}: {counts}{kept}")
    for name, count in result.counts.items():
        if count == 0:
            hint = f"the input has no {name}/ folder" if result.kept else f"use more images or a larger --{name}_frac"
            typer.echo(f"warning: split {name!r} is empty; {hint}", err=True)


if __name__ == "__main__":
    app()
