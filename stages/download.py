"""Stage ``download``: the pix2pix datasets, any archive URL, or a built-in offline dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field

from pix2pix.options import Flags

from .common import stage_app, user_errors
from .options import with_options
from .params import ParamsFile, ParamsSection

app = stage_app("Download a dataset, or generate a built-in one offline.")

BUILTIN = ("synthetic-facades", "sample-photos")


class DownloadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str | None, Flags("Data"), Field(description="Fetch this http(s):// or file:// .tar.gz / .tgz / .zip instead.")] = None
    sha256: Annotated[
        str | None, Flags("Data"), Field(pattern="^[0-9a-fA-F]{64}$", description="Expected sha256 of the archive \\[default: the one recorded by the first download].")
    ] = None
    retries: Annotated[int, Flags("Data"), Field(ge=0, description="Retries after a network failure (with backoff).")] = 5
    count: Annotated[int | None, Flags("Built-in data"), Field(ge=1, description="Images to make \\[default: 400 facades, 200 photos].")] = None
    size: Annotated[int | None, Flags("Built-in data"), Field(ge=8, description="Image side in pixels \\[default: 256].")] = None
    seed: Annotated[int | None, Flags("Built-in data"), Field(ge=0, description="The seed; the same seed gives the same images \\[default: 0].")] = None


@app.command("download")
@user_errors
@with_options(DownloadOptions)
def download(
    name: Annotated[
        str,
        typer.Argument(
            help="facades, cityscapes, maps, edges2shoes, edges2handbags, night2day; synthetic-facades or "
            "sample-photos (built in, no network); or any folder name with --url.",
            show_default=False,
        ),
    ],
    options: DownloadOptions,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="The dataset goes to OUTPUT_DIR/NAME.", rich_help_panel="Paths")
    ] = Path("data/raw"),
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Fetch a dataset into OUTPUT_DIR/NAME, safely, once.

    Downloads resume after an interruption (HTTP Range) and are retried with backoff.

    The archive's size and sha256 are checked; the first download's sha256 is kept in OUTPUT_DIR/NAME.lock.json.

    Archives with entries escaping the target (absolute paths, '..', outward links, devices) are refused.

    A complete, verified dataset is not fetched again.

    [bold]synthetic-facades[/] draws CMP-style facades: labels/ and photos/ with matching names.

    [bold]sample-photos[/] crops the colour photos that ship with scikit-image and scikit-learn.
    """
    from pix2pix.errors import UserError

    from .progress import progress_bar

    url, sha256, count, size, seed = options.url, options.sha256, options.count, options.size, options.seed
    if name in BUILTIN:
        if url or sha256:
            raise UserError(f"{name} is built in: --url and --sha256 do not apply")
        from pix2pix.prep.samples import write_sample_photos
        from pix2pix.prep.synthetic import write_synthetic_facades

        write = write_synthetic_facades if name == "synthetic-facades" else write_sample_photos
        options = {"count": count, "size": size, "seed": seed}
        with progress_bar(name) as update:
            target = write(output_dir, progress=update, **{key: value for key, value in options.items() if value is not None})
        typer.echo(f"{name}: wrote {target}")
        return
    if count is not None or size is not None or seed is not None:
        raise UserError(f"--count, --size and --seed only apply to {' and '.join(BUILTIN)}")

    from pix2pix.prep.download import download_dataset

    with progress_bar(name, transfer=True) as update:
        result = download_dataset(
            name, output_dir, url=url, sha256=sha256, retries=options.retries, progress=update,
            log=lambda message: typer.echo(f"{name}: {message}", err=True),
        )  # fmt: skip
    state = "downloaded and unpacked" if result.fetched else "already complete and verified:"
    typer.echo(f"{name}: {state} {result.path} (sha256 {result.sha256})")


if __name__ == "__main__":
    app()
