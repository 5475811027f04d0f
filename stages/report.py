"""`pix2pix report`: static HTML pages to look at results: one per experiment, and an index listing them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import fail, stage_app, user_errors

app = stage_app(__doc__)


@app.command("report")
@user_errors
def report(
    eval_dir: Annotated[Optional[Path], typer.Option("--eval-dir", "-e", help="Results folder written by `pix2pix evaluate`.")] = None,
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Report folder (replaced as a whole when done).")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", "-r", help="Training run folder, for losses.csv and options.json \\[default: no loss curves].")] = None,
    name: Annotated[Optional[str], typer.Option(help="Experiment name shown on the page \\[default: the eval folder's name].")] = None,
    index: Annotated[Optional[Path], typer.Option(help="Instead of a report, write this index page listing the --experiment reports, each against its own baselines.")] = None,
    experiments: Annotated[Optional[list[str]], typer.Option("--experiment", metavar="NAME=DIR", help="NAME=REPORT_DIR, repeated: the reports the --index page lists.")] = None,
    cgan_run: Annotated[Optional[Path], typer.Option("--cgan-run", help="Instead of an evaluation, report this `pix2pix cgan train` run folder (digit grid, conditioning accuracy, losses).")] = None,
) -> None:
    """Write the HTML report of one experiment, or with --index a page listing several.

    [bold]One experiment[/bold]: pix2pix report --eval-dir results/facades --run-dir runs/facades --output-dir reports/facades

    writes reports/facades/index.html: the image table (name | input | output | target, 50 rows a page, sortable by metric), the metrics (each with which way is better, beside the baselines evaluate recorded) and the loss curves. The folder is self-contained (images linked in) and works offline.

    [bold]Index[/bold]: pix2pix report --index reports/index.html --experiment facades=reports/facades --experiment maps=reports/maps

    writes one page setting each experiment against its own baselines ("beats identity on 2 of 3 metrics"), linking to its report. Experiments are different tasks: none is ranked against another.
    """
    from pix2pix.apps.report import (
        build_cgan_report,
        build_index,
        build_report,
    )
    from pix2pix.infer.summary import read_summary

    if index is not None:
        if any(value is not None for value in (eval_dir, output_dir, run_dir, name)):
            raise fail("--index writes only the index page: drop --eval-dir, --output-dir, --run-dir and --name")
        if not experiments:
            raise fail("--index needs at least one --experiment NAME=REPORT_DIR")
        rows = []
        for spec in experiments:
            label, _, folder = spec.partition("=")
            if not label or not folder:
                raise fail(f"--experiment {spec!r}: expected NAME=REPORT_DIR")
            relative = os.path.relpath(folder, index.resolve().parent)
            rows.append((label, relative, read_summary(Path(folder))))
        build_index(rows, index)
        typer.echo(f"{len(rows)} experiments -> {index}")
        return
    if experiments:
        raise fail("--experiment is only used with --index")
    if cgan_run is not None:
        if eval_dir is not None or run_dir is not None or output_dir is None:
            raise fail("--cgan-run takes --output-dir (and --name) only")
        build_cgan_report(name or cgan_run.resolve().name, cgan_run, output_dir)
        typer.echo(f"report -> {output_dir / 'index.html'}")
        return
    if eval_dir is None or output_dir is None:
        raise fail("--eval-dir and --output-dir are required (or --index with --experiment)")
    from stages.progress import progress_bar

    with progress_bar(f"report {output_dir}") as update:
        build_report(name or eval_dir.resolve().name, eval_dir, run_dir, output_dir, update)
    typer.echo(f"report -> {output_dir / 'index.html'}")


if __name__ == "__main__":
    app()
