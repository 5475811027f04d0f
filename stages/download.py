"""Stage ``download``: a dataset from a built-in generator, a pix2pix download, an archive URL or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field

from pix2pix.options import Flags
from pix2pix.prep.download import Limits

from .common import stage_app, user_errors
from .options import with_options
from .params import ParamsFile, ParamsSection

app = stage_app("Download a dataset, or generate a built-in one offline.")


class DownloadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[
        str | None,
        Flags("Data", "--url"),
        Field(
            description="Where the data comes from: synthetic-facades or sample-photos (built in, offline); facades, cityscapes, maps, "
            "edges2shoes, edges2handbags or night2day (the pix2pix datasets); an http(s):// or file:// .tar.gz / .tgz / .zip; "
            "or a local folder of images (copied; sub-folders such as train/val/test kept) \\[default: NAME]."
        ),
    ] = None
    sha256: Annotated[
        str | None, Flags("Data"), Field(pattern="^[0-9a-fA-F]{64}$", description="Expected sha256 of the archive \\[default: the one recorded by the first download].")
    ] = None
    retries: Annotated[int, Flags("Data"), Field(ge=0, description="Retries after a network failure (with backoff).")] = 5
    stall_timeout: Annotated[
        float, Flags("Data"), Field(gt=0, description="Seconds without a byte from the server before the connection is retried.")
    ] = Limits.stall_timeout_s
    deadline: Annotated[
        float, Flags("Data"), Field(gt=0, description="Seconds the whole download may take, retries included (a rerun resumes it).")
    ] = Limits.deadline_s
    max_unpacked_gb: Annotated[
        float, Flags("Data"), Field(gt=0, description="Refuse an archive that unpacks to more (a decompression bomb); the largest pix2pix dataset is under 10 GB.")
    ] = Limits.max_unpacked_bytes / 1e9
    max_files: Annotated[int, Flags("Data"), Field(ge=1, description="Refuse an archive holding more files (the largest pix2pix dataset has about 139,000).")] = Limits.max_files
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
            help="The dataset's folder, OUTPUT_DIR/NAME; also its source when --source is not given "
            "(facades, cityscapes, maps, edges2shoes, edges2handbags, night2day, synthetic-facades, sample-photos).",
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
    """Fill OUTPUT_DIR/NAME from a source, safely, once.

    Downloads resume after an interruption (HTTP Range) and are retried with backoff.

    The archive's size and sha256 are checked; the first download's sha256 is kept in OUTPUT_DIR/NAME.lock.json.

    Archives with entries escaping the target (absolute paths, '..', outward links, devices) are refused.

    A server that stops sending (--stall-timeout) is retried; a download past --deadline stops; an archive that would unpack beyond --max-unpacked-gb or --max-files is refused before it is unpacked.

    A complete, verified dataset is not fetched again.

    [bold]synthetic-facades[/] draws CMP-style facades as A|B pairs (A = photo, B = labels), laid out like the real facades.

    [bold]sample-photos[/] crops the colour photos that ship with scikit-image and scikit-learn.
    """
    from pix2pix.errors import UserError
    from pix2pix.prep.download import check_dataset_name
    from pix2pix.prep.sources import BUILTIN, parse_source

    from .progress import progress_bar

    source = parse_source(options.source or name)
    built = {"count": options.count, "size": options.size, "seed": options.seed}
    if source.kind != "builtin" and any(value is not None for value in built.values()):
        raise UserError(f"--count, --size and --seed only apply to {' and '.join(BUILTIN)}, not to source {source.value!r}")
    if source.kind in ("builtin", "folder") and options.sha256:
        raise UserError(f"--sha256 applies to downloaded archives, not to source {source.value!r}")
    check_dataset_name(name)
    target = output_dir / name

    if source.kind == "builtin":
        from pix2pix.prep.samples import write_sample_photos
        from pix2pix.prep.synthetic import write_synthetic_facades

        write = write_synthetic_facades if source.value == "synthetic-facades" else write_sample_photos
        with progress_bar(name) as update:
            write(target, progress=update, **{key: value for key, value in built.items() if value is not None})
        typer.echo(f"{name}: wrote {target} ({source.value})")
        return
    if source.kind == "folder":
        from pix2pix.prep.sources import copy_folder

        copied = copy_folder(Path(source.value), target)
        typer.echo(f"{name}: copied {copied} images from {source.value} to {target}")
        return

    from pix2pix.prep.download import dataset_url, download_dataset

    url = source.value if source.kind == "url" else dataset_url(source.value)
    limits = Limits(
        stall_timeout_s=options.stall_timeout, deadline_s=options.deadline,
        max_unpacked_bytes=round(options.max_unpacked_gb * 1e9), max_files=options.max_files,
    )  # fmt: skip
    with progress_bar(name, transfer=True) as update:
        result = download_dataset(
            name, output_dir, url=url, sha256=options.sha256, retries=options.retries, limits=limits, progress=update,
            log=lambda message: typer.echo(f"{name}: {message}", err=True),
        )  # fmt: skip
    state = "downloaded and unpacked" if result.fetched else "already complete and verified:"
    typer.echo(f"{name}: {state} {result.path} (sha256 {result.sha256})")


if __name__ == "__main__":
    app()
