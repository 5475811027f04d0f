"""`pix2pix compare`: one static HTML page comparing runs as images, side by side, with their metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field

from pix2pix.errors import UserError
from pix2pix.options import Flags
from stages.common import stage_app, user_errors
from stages.options import with_options
from stages.progress import progress_bar

app = stage_app(__doc__)

# The pipeline's folders (dvc.yaml) that `--exp` reads from an experiment: evaluate's results and train's sample grids
RESULTS_DIR, MODELS_DIR = "results", "models"
KNOWN_SHOWN = 5  # experiment names an error lists


class CompareOptions(BaseModel):
    """How the comparison page orders and names what it shows."""

    model_config = ConfigDict(extra="forbid")

    sort_by: Annotated[
        str | None,
        Flags("Options"),
        Field(description="Order each table's runs by this metric of their metrics.json, best first in its direction (lower or higher is better, from evaluation.json) \\[default: as given]."),
    ] = None
    title: Annotated[str, Flags("Options"), Field(min_length=1, description="The page's title.")] = "pix2pix runs compared"


def named_folders(specs: list[str], option: str) -> dict[str, Path]:
    """``[NAME=]FOLDER`` values of a repeated option by name (the folder's name when NAME= is left out)."""
    folders: dict[str, Path] = {}
    for spec in specs:
        name, separator, folder = spec.partition("=")
        if not separator:
            name, folder = Path(spec).resolve().name, spec
        if not name or not folder:
            raise UserError(f"{option} {spec!r}: expected [NAME=]FOLDER")
        if name in folders:
            raise UserError(f"{option} {spec!r}: the name {name!r} is given twice")
        folders[name] = Path(folder)
    return folders


def listed(names: list[str]) -> str:
    """A few ``names`` for an error line, and how many more there are."""
    shown = ", ".join(names[:KNOWN_SHOWN]) or "none"
    return f"{shown} and {len(names) - KNOWN_SHOWN} more" if len(names) > KNOWN_SHOWN else shown


def download_dvc_experiment(spec: str, folder: Path) -> tuple[str, Path, Path | None, str]:
    """Copy ``NAME[:EXPERIMENT]``'s results/EXPERIMENT and models/EXPERIMENT/samples from the local DVC cache into
    ``folder``: NAME is a DVC experiment (or any Git revision), read without `dvc exp apply` touching the
    workspace; EXPERIMENT may be left out where it has one. Returns (NAME, the results folder, a training folder
    holding the samples or None, where the page says they come from)."""
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    from pix2pix.train.loop import SAMPLES_DIR
    from stages.tracking import repository_root

    name, _, experiment = spec.partition(":")
    if not name:
        raise UserError(f"--exp {spec!r}: expected DVC_EXPERIMENT[:EXPERIMENT]")
    root = repository_root()
    filesystem = DVCFileSystem(str(root), rev=name)
    try:
        results = sorted(Path(entry["name"]).name for entry in filesystem.ls(RESULTS_DIR, detail=True) if entry["type"] == "directory")
    except FileNotFoundError:
        results = []
    except RevError as exc:
        raise UserError(f"--exp {spec}: {exc} (DVC experiments of {root}: {listed(dvc_experiment_names(root))})") from None
    except DvcException as exc:
        raise UserError(f"--exp {spec}: {exc}") from None
    if not experiment and len(results) == 1:
        experiment = results[0]
    if not experiment:
        raise UserError(f"--exp {spec}: name one of its evaluations, --exp {name}:EXPERIMENT (it has: {listed(results)})")
    if experiment not in results:
        raise UserError(f"--exp {spec}: {name!r} has no {RESULTS_DIR}/{experiment} (it has: {listed(results)})")
    results_dir, samples = folder / RESULTS_DIR, f"{MODELS_DIR}/{experiment}/{SAMPLES_DIR}"
    training_dir = folder / MODELS_DIR if filesystem.isdir(samples) else None
    try:
        filesystem.get(f"{RESULTS_DIR}/{experiment}", str(results_dir), recursive=True)
        if training_dir is not None:
            filesystem.get(samples, str(training_dir / SAMPLES_DIR), recursive=True)
    except FileNotFoundError:
        raise UserError(f"--exp {spec}: its outputs are not in the local DVC cache: fetch them with `dvc exp pull REMOTE {name}`, or run it again") from None
    return name, results_dir, training_dir, f"DVC experiment {name}: {RESULTS_DIR}/{experiment}"


def dvc_experiment_names(root: Path) -> list[str]:
    """The names of the DVC experiments of the repository at ``root``, sorted."""
    from dvc.repo import Repo
    from dvc.repo.experiments.utils import exp_refs

    with Repo(str(root)) as repo:
        return sorted({ref.name for ref in exp_refs(repo.scm)})


@app.command("compare")
@user_errors
@with_options(CompareOptions)
def compare(
    output: Annotated[Path, typer.Option("--output", "-o", help="The page, e.g. reports/compare.html; its images go to the folder beside it named after it (reports/compare_files, replaced as a whole).", rich_help_panel="Paths")],
    options: CompareOptions,
    runs: Annotated[list[str] | None, typer.Option("--run", "-r", metavar="[NAME=]RESULTS_DIR", help="A results folder written by `pix2pix evaluate`, repeated: one column each (NAME defaults to the folder's name).", rich_help_panel="Paths")] = None,
    mlflow_runs: Annotated[list[str] | None, typer.Option("--mlflow-run", metavar="RUN_ID", help="An MLflow run whose evaluation `pix2pix evaluate` logged (its images and metrics, and the sample grids its training logged), repeated: a column each, named after the run; the store is the repository's, or MLFLOW_TRACKING_URI.", rich_help_panel="Paths")] = None,
    dvc_experiments: Annotated[list[str] | None, typer.Option("--exp", metavar="DVC_EXPERIMENT[:EXPERIMENT]", help="A DVC experiment (or Git revision) of this repository, repeated: its results/EXPERIMENT and models/EXPERIMENT/samples read from the local DVC cache, without `dvc exp apply`; a column each, named after it. EXPERIMENT may be left out where it evaluated one.", rich_help_panel="Paths")] = None,
    samples: Annotated[list[str] | None, typer.Option("--samples", metavar="NAME=RUN_DIR", help="The training run folder of the run NAME, whose samples/step_*.png (written by `pix2pix train`) the step slider replays \\[default: no training samples].", rich_help_panel="Paths")] = None,
) -> None:
    """Write one HTML page comparing runs as images: the same validation inputs in rows, a column per run (its metrics above it), then the target and the input baseline.

    pix2pix compare --run results/facades --run wide=results/facades_wide --samples facades=models/facades --output reports/compare.html

    pix2pix compare --exp lucid-ibex:facades --exp bushy-yard:facades --run results/facades --output reports/sweep.html

    Runs evaluated on the same inputs (names and bytes) share a table; others get tables of their own. The page sorts runs and rows by a metric, replays the training samples with a step slider, and sets two outputs (or an output and the target) over each other with a before/after slider and a zoom. It works offline: its images are files beside it, loaded as they scroll into view.
    """
    from pix2pix.apps.compare import build_comparison, check_run_folders, files_folder, read_run
    from pix2pix.files import check_output_separate

    results = named_folders(runs or [], "--run")
    training = named_folders(samples or [], "--samples")
    if not results and not mlflow_runs and not dvc_experiments:
        raise UserError("nothing to compare: give --run RESULTS_DIR, --mlflow-run RUN_ID or --exp DVC_EXPERIMENT, repeated")
    for name in training:
        if name not in results:
            raise UserError(f"--samples {name}=...: no --run is named {name!r}")
    for name, folder in results.items():
        check_run_folders(folder, training.get(name))
    check_output_separate(files_folder(output), [*results.values(), *training.values()])
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="pix2pix-compare-") as downloads:
        if mlflow_runs:
            from stages.tracking import download_run

            for index, run_id in enumerate(mlflow_runs):
                name, folder, training_dir = download_run(run_id, Path(downloads) / str(index))
                if name in results:
                    raise UserError(f"--mlflow-run {run_id}: its name {name!r} is taken by another run")
                results[name], sources[name] = folder, f"MLflow run {run_id}"
                if training_dir is not None:
                    training[name] = training_dir
        for index, spec in enumerate(dvc_experiments or []):
            name, folder, training_dir, source = download_dvc_experiment(spec, Path(downloads) / f"exp{index}")
            if name in results:
                raise UserError(f"--exp {spec}: its name {name!r} is taken by another run")
            results[name], sources[name] = folder, source
            if training_dir is not None:
                training[name] = training_dir
        read = [read_run(name, folder, training.get(name), sources.get(name)) for name, folder in results.items()]
        with progress_bar(f"compare {output}") as update:
            build_comparison(read, output, options.sort_by, options.title, update)
    typer.echo(f"{len(read)} runs -> {output}")


if __name__ == "__main__":
    app()
