"""`pix2pix evaluate` (alias `test`): translate a folder with a trained model and score it.

Writes RES/images/NAME-{inputs,outputs,targets}.png, RES/metrics.csv (a row per image),
RES/metrics.json (the means: what `dvc metrics show` lists) and RES/evaluation.json (which way
each metric is better, and the same means for trivial baselines). The whole folder appears at
once, when everything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from pix2pix.options import Flags, InferenceOptions
from stages.common import WhichCheckpoint, stage_app, user_errors
from stages.options import with_options
from stages.params import ParamsFile, ParamsSection
from stages.progress import counting_bar

app = stage_app(__doc__)


class EvaluateOptions(InferenceOptions):
    size: Annotated[
        int | None,
        Flags("Data"),
        Field(ge=1, description="Resize each half to SIZE x SIZE first (the reference test does 256) \\[default: native size, any shape]."),
    ] = None


@app.command("evaluate")
@user_errors
@with_options(EvaluateOptions)
def evaluate(
    input_dir: Annotated[Path, typer.Option("--input-dir", "-i", help="Folder of A|B images (or colour photos for a colorization model).", rich_help_panel="Paths")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train`, or a generator.pt / checkpoint.pt file.", rich_help_panel="Paths")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Results folder (replaced as a whole when done; an existing one only if pix2pix wrote it).", rich_help_panel="Paths")],
    options: EvaluateOptions,
    train_dir: Annotated[
        Path | None,
        typer.Option(
            "--train-dir",
            help="The model's training folder, for the mean-image baseline (the mean of its target images) \\[default: no mean baseline].",
            rich_help_panel="Paths",
        ),
    ] = None,
    which: WhichCheckpoint = None,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Translate every image in INPUT_DIR and compute L1, PSNR, SSIM (and CIEDE2000 for colorization).

    Each metric comes with its trivial baselines, scored the same way: the input itself (identity; for L -> ab colorization the grey L channel, "grey"), and with --train-dir the pixel-wise mean of the training targets ("mean"). Without --train-dir the mean baseline is left out.
    """
    from pix2pix.checkpoint import resolve
    from pix2pix.data.images import list_images
    from pix2pix.files import atomic_directory, check_output_separate
    from pix2pix.infer.evaluate import evaluate as evaluate_model
    from pix2pix.infer.evaluate import image_names, mean_target_image
    from pix2pix.infer.load import generator_from_checkpoint
    from pix2pix.task import Task

    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    check_output_separate(output_dir, [input_dir, run_dir, *([train_dir] if train_dir else [])])
    paths = list_images(input_dir)
    train_paths = list_images(train_dir) if train_dir else []
    image_names(paths)  # refuses two inputs with one output name before the model is loaded
    accel = options.acceleration()
    generator, config = generator_from_checkpoint(resolve(checkpoint, which), accel.device)
    task = Task.of(config)
    mean_target = None
    if train_paths:
        with counting_bar("averaging training targets", len(train_paths)) as advance:
            mean_target = mean_target_image(train_paths, task, options.size, advance)
    with counting_bar("evaluating", len(paths)) as advance, atomic_directory(output_dir) as staging:
        summary = evaluate_model(
            generator, task, paths, staging, options.eval_mode, options.size, options.seed,
            progress=advance, batch_size=options.batch_size, acceleration=accel, mean_target=mean_target,
        )  # fmt: skip
    means = "  ".join(f"{metric} {summary[metric]:.4f}" for metric in summary["directions"])
    typer.echo(f"{len(paths)} images -> {output_dir}  {means}")
    for baseline, scores in summary["baselines"].items():
        typer.echo(f"  baseline {baseline}: " + "  ".join(f"{metric} {value:.4f}" for metric, value in scores.items()))
    if checkpoint.is_dir():
        from stages.tracking import log_evaluation

        if log_evaluation(checkpoint, summary, output_dir, {"evaluate": options.model_dump(mode="json")}):
            typer.echo("metrics logged to the training run in MLflow")


if __name__ == "__main__":
    app()
