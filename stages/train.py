"""`pix2pix train`: train a U-Net + PatchGAN pix2pix model on a folder of A|B images.

Rerunning the same command on the same output folder resumes from its last checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import Field, model_validator

from pix2pix.options import Flags
from pix2pix.train.config import TrainConfig
from stages.common import fail, stage_app, user_errors
from stages.options import with_options
from stages.params import ParamsFile, ParamsSection
from stages.progress import progress_meter

app = stage_app(__doc__)


class TrainOptions(TrainConfig):
    """`pix2pix train`'s options: the training config, plus where decoded images are kept, how often samples are logged,
    and the validation images."""

    cache_dir: Annotated[
        Path | None,
        Flags("Data"),
        Field(description="Keep the decoded training images here as a memory-mapped file, built once per dataset and reused by later runs and by every process of a multi-GPU run \\[default: decode into memory]."),
    ] = None
    sample_freq: Annotated[
        int, Flags("Tracking"), Field(ge=1, description="Steps between sample grids (input | output | target), kept in the run folder as samples/step_NNNNNNN.png and logged to MLflow.")
    ] = 100
    val_dir: Annotated[
        Path | None,
        Flags("Checkpoints"),
        Field(description="Folder of A|B validation pairs: every --val-freq steps the generator is scored on them as `pix2pix evaluate` does by default (val.csv, MLflow val_*), and the best one is kept as best.pt \\[default: no validation]."),
    ] = None

    @model_validator(mode="after")
    def _early_stop_needs_validation(self) -> TrainOptions:
        if self.early_stop is not None and self.val_dir is None:
            raise ValueError("early_stop needs validation images: give --val-dir too")
        return self

    def training(self) -> TrainConfig:
        return TrainConfig(**self.model_dump(include=set(TrainConfig.model_fields)))


@app.command("train")
@user_errors
@with_options(TrainOptions)
def train(
    input_dir: Annotated[Path, typer.Option("--input-dir", "-i", help="Folder of training images: A|B side by side, or plain colour photos with --lab-colorization.", rich_help_panel="Paths")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Run folder: checkpoint.pt, generator.pt, losses.csv, options.json; locked while training (train.lock names the PID). An existing run here is resumed, with the same options but for the length (max_epochs, max_steps), the frequencies and the speed options: any other change, lr included, is refused.", rich_help_panel="Paths")],
    options: TrainOptions,
    mlflow_experiment: Annotated[Optional[str], typer.Option("--mlflow-experiment", help="Log params, losses, sample grids and the generator to this MLflow experiment \\[default: no tracking].", rich_help_panel="Tracking")] = None,
    register: Annotated[Optional[str], typer.Option("--register", help="Register the logged MLflow model (the generator as a pyfunc; best.pt if validation wrote one) as a new version of this registered model; needs --mlflow-experiment. `pix2pix promote` gives the best run's version the alias champion \\[default: no registration].", rich_help_panel="Tracking")] = None,
    restart_if_changed: Annotated[bool, typer.Option("--restart-if-changed", help="Resume the run folder's checkpoint only if it was made from the same options, training and validation images and code (the files DVC lists as the stage's code deps); otherwise delete it and start afresh (what `dvc repro` needs: it keeps checkpoint.pt between runs).", rich_help_panel="Checkpoints")] = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Train pix2pix: U-Net generator, PatchGAN discriminator, cGAN + L1 loss.

    Training stops with an error at the first step whose losses are not finite (every step is checked), or at a checkpoint whose weights are not; the last checkpoint written is kept.
    """
    from pix2pix.data.images import list_images

    if register is not None:
        from stages.tracking import check_registered_name

        if mlflow_experiment is None:
            raise fail("--register needs --mlflow-experiment: the registered version is the tracked run's model")
        check_registered_name(register)
    paths = list_images(input_dir)
    val_paths = list_images(options.val_dir) if options.val_dir else []
    config = options.training()
    inputs = None
    if restart_if_changed:
        from pix2pix.train.loop import inputs_digest
        from stages.code_deps import experiment_code, source_files

        code = source_files(experiment_code("stages.train", config.lab_colorization))
        inputs = inputs_digest(config, paths, code, val_paths)
    run_training(options, paths, output_dir, mlflow_experiment, inputs, val_paths, register)


def run_training(
    options: TrainOptions,
    paths: list[Path],
    output_dir: Path,
    mlflow_experiment: str | None = None,
    inputs: str | None = None,
    val_paths: list[Path] | None = None,
    register: str | None = None,
) -> dict:
    """Train pix2pix with a progress bar and optional MLflow tracking: every option is logged, the training images'
    dataset as the run's input, and the generator as an MLflow model, registered as a new version of ``register``
    if given."""
    from pix2pix.train.pix2pix_model import train as train_model

    input_dir = paths[0].parent
    return run_tracked(
        lambda callbacks, load_progress: train_model(options.training(), paths, output_dir, callbacks, load_progress, options.cache_dir, inputs, val_paths or ()),
        output_dir,
        {"train": options.model_dump(mode="json"), "input_dir": str(input_dir)},
        mlflow_experiment,
        options.sample_freq,
        to_load=len(paths),
        log_model=lambda: log_generator_model(output_dir, register),
        dataset=input_dir,
    )


def log_generator_model(output_dir: Path, register: str | None) -> None:
    """Log the run's generator (best.pt if validation wrote one) as the MLflow model of ``pix2pix.apps.mlflow_model``
    in the active run, registered as a new version of ``register`` if given. Only `pix2pix train` names this, so the
    cGAN's stage does not depend on the translator's code."""
    from pix2pix.apps.mlflow_model import log_translator_model
    from pix2pix.checkpoint import resolve

    log_translator_model(resolve(output_dir), register)


def run_tracked(
    train_fn,
    output_dir: Path,
    params: dict,
    mlflow_experiment: str | None = None,
    sample_freq: int = 0,
    to_load: int = 0,
    log_model: Callable[[], None] | None = None,
    dataset: Path | None = None,
) -> dict:
    """Run ``train_fn(callbacks, load_progress) -> summary``, a training loop that reports through
    ``pix2pix.train.loop.Callbacks``, with a progress bar (log lines when stderr is not a terminal),
    optional MLflow tracking (params, the ``dataset`` folder's DVC output as the run's input, losses, sample grids, the summary's numeric ``metrics``,
    generator.pt, and whatever ``log_model`` logs into the finished run: pix2pix's MLflow model) and exit code 128 + signum after a SIGTERM / SIGINT checkpoint. The MLflow run
    ends KILLED after a signal, FAILED (message in tag pix2pix.error) after any other error (a
    diverged training included), and is left alone when another training holds the run folder."""
    import contextlib
    import signal

    from pix2pix.train.distributed import from_environment
    from pix2pix.train.loop import Callbacks, RunFolderBusy, RunPlan, TrainingInterrupted

    if not from_environment().main:  # another torchrun process: rank 0 shows progress and talks to MLflow
        try:
            return train_fn(None, None)
        except TrainingInterrupted as stop:
            raise typer.Exit(128 + stop.signum) from None

    with contextlib.ExitStack() as meters:
        loading = meters.enter_context(progress_meter("loading images", to_load))
        training = loading  # notes before the training starts (an interruption) go through the loading meter

        def on_resume(step: int, total: int) -> None:
            loading.note(f"{output_dir}: resuming from step {step} of {total}")

        def on_plan(plan: RunPlan) -> None:
            networks = ", ".join(f"{name} {count:,}" for name, count in plan.parameters.items())
            processes = f" x {plan.processes} processes (DDP over {plan.backend})" if plan.backend else ""
            loading.close()
            loading.note(
                f"{output_dir}: {plan.images} images, {plan.total_steps} steps ({plan.steps_per_epoch} per epoch); "
                f"parameters {networks}; device {plan.device}{processes}"
            )

        def on_start(step: int, total: int) -> None:
            nonlocal training
            training = meters.enter_context(progress_meter("training", total, unit="steps", start=step))

        def on_step(report) -> None:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in report.losses.items())
            speed = f"{report.images_per_second:.1f} img/s  " if report.images_per_second else ""  # measured after half a second
            training.update(report.step, description=f"epoch {report.epoch}", details=speed + losses)

        def on_validation(step: int, scores: dict, best: bool) -> None:
            values = "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
            training.note(f"step {step}  validation  {values}{'  (best so far: best.pt)' if best else ''}")

        callbacks = Callbacks(on_resume=on_resume, on_plan=on_plan, on_start=on_start, on_step=on_step, on_validation=on_validation, sample_freq=sample_freq)
        tracker = None
        if mlflow_experiment:
            from stages.tracking import TrainingTracker

            tracker = TrainingTracker(mlflow_experiment, output_dir, params, dataset)

            def on_start_tracked(step: int, total: int) -> None:
                on_start(step, total)
                tracker.on_start(step)

            def on_step_tracked(report) -> None:
                on_step(report)
                tracker.on_step(report)

            def on_validation_tracked(step: int, scores: dict, best: bool) -> None:
                on_validation(step, scores, best)
                tracker.on_validation(step, scores)

            callbacks.on_start, callbacks.on_step, callbacks.on_validation = on_start_tracked, on_step_tracked, on_validation_tracked
            callbacks.on_sample = tracker.on_sample
        try:
            summary = train_fn(callbacks, loading.advance)
            if tracker and not summary.get("already_complete"):
                tracker.finish(
                    output_dir / "generator.pt",
                    metrics={k: v for k, v in summary.get("metrics", {}).items() if isinstance(v, float)},
                    log_model=log_model,
                )
        except TrainingInterrupted as stop:
            if tracker:
                tracker.finish(None, status="KILLED")
            name = signal.Signals(stop.signum).name
            training.note(f"{name}: stopped at step {stop.step}; checkpoint saved in {output_dir}. Rerun to resume.")
            raise typer.Exit(128 + stop.signum) from None
        except RunFolderBusy:  # the folder's MLflow run belongs to the training holding it
            raise
        except KeyboardInterrupt:  # before the training loop catches SIGINT itself
            if tracker:
                tracker.finish(None, status="KILLED")
            raise
        except Exception as error:  # the caller reports it as before; the run records it
            if tracker:
                tracker.finish(None, status="FAILED", error=str(error) or type(error).__name__)
            raise
    if summary.get("restarted"):
        typer.echo(f"{output_dir}: its checkpoint was made from other options, images or code; trained afresh.", err=True)
    if summary.get("stopped_early"):
        typer.echo(f"{output_dir}: stopped early at step {summary['steps']}: {summary['stopped_early']} validations in a row without a better score", err=True)
    if "best" in summary:
        best = summary["best"]
        typer.echo(f"{output_dir}: best.pt is the generator of step {best['step']} ({'  '.join(f'{k} {v:.4f}' for k, v in best.items() if k != 'step')})", err=True)
    if summary.get("already_complete"):
        typer.echo(f"{output_dir}: training already complete ({summary['steps']} steps); nothing to do.", err=True)
    else:
        waited = f"{summary['data_wait_share']:.0%} of the time waiting for data"
        typer.echo(f"trained {summary['steps']} steps over {summary['images']} images ({waited}) -> {output_dir}", err=True)
    return summary


if __name__ == "__main__":
    app()
