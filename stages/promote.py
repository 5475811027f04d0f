"""`pix2pix promote`: give the best finished run of an MLflow experiment (a sweep) the registry alias champion.

The best run is the one whose latest value of a validation or evaluation metric (val_l1, eval_psnr,
eval_hints_10_ciede2000...) is best, in the metric's own direction (pix2pix.infer.metrics.DIRECTIONS).
Its logged model (`pix2pix train --mlflow-experiment`) gets a version of the registered model unless
it has one, and that version the alias, so `mlflow models serve -m models:/NAME@champion` serves it.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from stages.common import fail, stage_app, user_errors

app = stage_app(__doc__)

METRIC_PATTERN = re.compile(r"(?:val|eval)_(?:hints_\d+_)?(?P<base>\w+)")  # eval_hints_10_psnr: the hint curve's


def direction(metric: str) -> str:
    """"lower" or "higher": which way ``metric`` (val_*, eval_*) improves."""
    from pix2pix.infer.metrics import DIRECTIONS

    match = METRIC_PATTERN.fullmatch(metric)
    if match is None or match["base"] not in DIRECTIONS:
        known = ", ".join(f"val_{name}" for name in DIRECTIONS)
        raise fail(f"--metric {metric!r}: not a validation or evaluation metric (expected one of {known}, or eval_ instead of val_)")
    return DIRECTIONS[match["base"]]


@app.command("promote")
@user_errors
def promote(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="MLflow experiment whose finished runs compete (those of `pix2pix train --mlflow-experiment`).")],
    register: Annotated[str, typer.Option("--register", help="Registered model that gets the alias; the best run's model becomes a new version of it unless it is one already.")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric that ranks the runs, in its own direction: val_l1, val_psnr, eval_ciede2000...")] = "val_l1",
    alias: Annotated[str, typer.Option("--alias", help="Alias given to the best run's version.")] = "champion",
) -> None:
    """Register the best run's model (by --metric) and point the alias champion at it."""
    from stages.tracking import check_registered_name, connect, quoted

    check_registered_name(register)
    lower_is_better = direction(metric) == "lower"

    mlflow = connect()
    client = mlflow.MlflowClient()
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise fail(f"--experiment {experiment!r}: no such experiment at {mlflow.get_tracking_uri()}")
    runs = [run for run in mlflow.search_runs([found.experiment_id], "attributes.status = 'FINISHED'", output_format="list") if metric in run.data.metrics]
    if not runs:
        raise fail(f"--experiment {experiment!r}: no finished run has the metric {metric}")
    best = min(runs, key=lambda run: run.data.metrics[metric] if lower_is_better else -run.data.metrics[metric])
    run_id, score = best.info.run_id, best.data.metrics[metric]
    newest_first = [{"field_name": "creation_timestamp", "ascending": False}]
    models = client.search_logged_models([found.experiment_id], f"source_run_id = '{run_id}'", order_by=newest_first)
    if not models:
        raise fail(f"run {best.info.run_name} ({run_id}, {metric} {score:.4g}) is the best but logged no model (trained before models were logged?)")
    versions = client.search_model_versions(f"name = {quoted(register)} and run_id = '{run_id}'")
    version = max(versions, key=lambda found: int(found.version)) if versions else mlflow.register_model(models[0].model_uri, register)
    client.set_registered_model_alias(register, alias, version.version)
    typer.echo(f"{register}@{alias} -> version {version.version}: run {best.info.run_name} ({run_id}), {metric} {score:.4g}")


if __name__ == "__main__":
    app()
