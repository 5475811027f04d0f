"""Stage ``split``: train/val/test folders, copied or hard-linked; the input folder is only read."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import stage_app, user_errors
from .imageop_options import InputDir, OutputDir
from .params import ParamsFile, ParamsSection

app = stage_app("Split a folder of images into train/val/test.")


@app.command("split")
@user_errors
def split(
    input_dir: InputDir,
    output_dir: OutputDir,
    train_frac: Annotated[float, typer.Option("--train_frac", "--train-frac", min=0.0, max=1.0, help="Share of images for training.")] = 0.8,
    val_frac: Annotated[
        float | None,
        typer.Option("--val_frac", "--val-frac", min=0.0, max=1.0, help="Share for validation \\[default: the rest, 0.2].", show_default=False),
    ] = None,
    test_frac: Annotated[float, typer.Option("--test_frac", "--test-frac", min=0.0, max=1.0, help="Share for testing.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffle; the same seed gives the same split.")] = 0,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group_by", "--group-by",
            help="Regular expression on file names without suffix; files with the same key (first group, or the whole match) "
            r"stay in one split. E.g. '^(.+)_\d+$' keeps astronaut_001.png and astronaut_002.png together.",
        ),
    ] = None,
    link: Annotated[bool, typer.Option("--link", help="Hard-link instead of copying (falls back to copying across filesystems).")] = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Write OUTPUT_DIR/train, val and test (those with a non-zero share), deterministically for a seed.

    Counts follow the reference: int(TRAIN_FRAC*N) train, int(TEST_FRAC*N) test, the rest val.

    Unlike the reference, files are copied (or linked), never moved.
    """
    from pix2pix.prep.split import split_folder

    result = split_folder(
        input_dir, output_dir, train_frac=train_frac, val_frac=val_frac, test_frac=test_frac,
        seed=seed, group_by=group_by, link=link,
    )  # fmt: skip
    counts = ", ".join(f"{name} {count}" for name, count in result.counts.items())
    how = "linked" if result.linked else "copied"
    groups = f" in {result.groups} groups" if group_by else ""
    typer.echo(f"{how} {sum(result.counts.values())} images{groups} into {output_dir}: {counts}")
    for name, count in result.counts.items():
        if count == 0:
            typer.echo(f"warning: split {name!r} is empty; use more images or a larger --{name}_frac", err=True)


if __name__ == "__main__":
    app()
