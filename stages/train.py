"""`pix2pix train`: train a U-Net + PatchGAN pix2pix model on a folder of A|B images.

Rerunning the same command on the same output folder resumes from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import stage_app, user_errors, validated
from stages.device_options import (
    Amp,
    ChannelsLast,
    Compile,
    CudnnBenchmark,
    Device,
    Tf32,
)
from stages.params import ParamsFile, ParamsSection
from stages.progress import training_bar

app = stage_app(__doc__)


@app.command("train")
@user_errors
def train(
    input_dir: Annotated[Path, typer.Option("--input-dir", "--input_dir", "-i", help="Folder of training images: A|B side by side, or plain colour photos with --lab-colorization.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "--output_dir", "-o", help="Run folder: checkpoint.pt, generator.pt, losses.csv, options.json. An existing run here is resumed.")],
    direction: Annotated[str, typer.Option("--which-direction", "--which_direction", "--direction", help="AtoB: left half -> right half; BtoA: right -> left (facades labels -> photo).")] = "AtoB",
    lab_colorization: Annotated[bool, typer.Option("--lab-colorization", "--lab_colorization", help="Colorize: plain colour images, L channel in, ab channels out (Lab space).")] = False,
    max_epochs: Annotated[Optional[int], typer.Option("--max-epochs", "--max_epochs", help="Total epochs \\[default: n_epochs + n_epochs_decay].")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", "--max_steps", help="Stop after this many steps (wins over epochs).")] = None,
    n_epochs: Annotated[int, typer.Option("--n-epochs", "--n_epochs", "--niter", help="Epochs at the initial learning rate.")] = 100,
    n_epochs_decay: Annotated[int, typer.Option("--n-epochs-decay", "--n_epochs_decay", "--niter_decay", help="Epochs of linear decay to zero after that.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", help="Images per step (the paper uses 1).")] = 1,
    load_size: Annotated[int, typer.Option("--load-size", "--load_size", "--scale_size", help="Images are resized to this square before the random crop.")] = 286,
    crop_size: Annotated[int, typer.Option("--crop-size", "--crop_size", help="Training crop; the U-Net depth follows it (256 -> 8 levels).")] = 256,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", " /--no_flip", help="Random horizontal flips.")] = True,
    ngf: Annotated[int, typer.Option(help="Generator filters in the first layer.")] = 64,
    ndf: Annotated[int, typer.Option(help="Discriminator filters in the first layer.")] = 64,
    norm: Annotated[str, typer.Option(help="batch or instance normalisation.")] = "batch",
    patch: Annotated[int, typer.Option(help="PatchGAN receptive field: 1 (PixelGAN), 16, 34, 70, 142 or 286.")] = 70,
    unet_depth: Annotated[Optional[int], typer.Option("--unet-depth", "--unet_depth", help="U-Net levels \\[default: from the crop size, at most 8].")] = None,
    dropout: Annotated[float, typer.Option(help="Dropout in the inner decoder blocks; 0 turns it off (the reference's --no_dropout).")] = 0.5,
    gan_mode: Annotated[str, typer.Option("--gan-mode", "--gan_mode", help="vanilla (cross-entropy) or lsgan (least squares).")] = "vanilla",
    l1_weight: Annotated[float, typer.Option("--l1-weight", "--l1_weight", "--lambda_L1", help="Weight of the L1 term.")] = 100.0,
    gan_weight: Annotated[float, typer.Option("--gan-weight", "--gan_weight", help="Weight of the GAN term.")] = 1.0,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = 0.5,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = 0.999,
    seed: Annotated[int, typer.Option(help="Seed for init, data order, crops and dropout: CPU runs repeat bit for bit.")] = 0,
    save_freq: Annotated[int, typer.Option("--save-freq", "--save_freq", help="Steps between checkpoints (one is always written at the end).")] = 5000,
    log_freq: Annotated[int, typer.Option("--log-freq", "--log_freq", "--print_freq", help="Steps between rows of losses.csv.")] = 10,
    device: Device = "auto",
    amp: Amp = "auto",
    tf32: Tf32 = "auto",
    channels_last: ChannelsLast = "auto",
    cudnn_benchmark: CudnnBenchmark = "auto",
    compile: Compile = False,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", "--cache_dir", help="Keep the decoded training images here as a memory-mapped file, built once per dataset and reused by later runs and by every process of a multi-GPU run \\[default: decode into memory].")] = None,
    mlflow_experiment: Annotated[Optional[str], typer.Option("--mlflow-experiment", "--mlflow_experiment", help="Log params, losses, sample grids and the generator to this MLflow experiment \\[default: no tracking].")] = None,
    sample_freq: Annotated[int, typer.Option("--sample-freq", "--sample_freq", help="Steps between sample grids (input | output | target) logged to MLflow.")] = 100,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Train pix2pix: U-Net generator, PatchGAN discriminator, cGAN + L1 loss."""
    from pix2pix.data.images import list_images
    from pix2pix.train.config import TrainConfig

    config = validated(
        TrainConfig,
        direction=direction, lab_colorization=lab_colorization, max_epochs=max_epochs, max_steps=max_steps,
        n_epochs=n_epochs, n_epochs_decay=n_epochs_decay, batch_size=batch_size, load_size=load_size,
        crop_size=crop_size, flip=flip, ngf=ngf, ndf=ndf, norm=norm, patch=patch, unet_depth=unet_depth,
        dropout=dropout, gan_mode=gan_mode, l1_weight=l1_weight, gan_weight=gan_weight, lr=lr, beta1=beta1,
        beta2=beta2, seed=seed, save_freq=save_freq, log_freq=log_freq, device=device, amp=amp, tf32=tf32,
        channels_last=channels_last, cudnn_benchmark=cudnn_benchmark, compile=compile,
    )  # fmt: skip
    config.depth()
    paths = list_images(input_dir)
    run_training(config, paths, output_dir, mlflow_experiment, sample_freq, cache_dir)


def run_training(
    config, paths: list[Path], output_dir: Path, mlflow_experiment: str | None = None, sample_freq: int = 0, cache_dir: Path | None = None
) -> dict:
    """Train pix2pix with a progress bar and optional MLflow tracking."""
    from pix2pix.train.pix2pix_model import train as train_model

    return run_tracked(
        lambda callbacks, load_progress: train_model(config, paths, output_dir, callbacks, load_progress, cache_dir),
        output_dir,
        {"train": config.model_dump(mode="json"), "input_dir": str(paths[0].parent)},
        mlflow_experiment,
        sample_freq,
        to_load=len(paths),
    )


def run_tracked(train_fn, output_dir: Path, params: dict, mlflow_experiment: str | None = None, sample_freq: int = 0, to_load: int = 0) -> dict:
    """Run ``train_fn(callbacks, load_progress) -> summary``, a training loop that reports through
    ``pix2pix.train.loop.Callbacks``, with a progress bar (log lines when stderr is not a terminal),
    optional MLflow tracking (params, losses, sample grids, the summary's numeric ``metrics``,
    generator.pt) and exit code 128 + signum after a SIGTERM / SIGINT checkpoint."""
    import signal
    import sys

    from rich.progress import TextColumn

    from pix2pix.train.distributed import from_environment
    from pix2pix.train.loop import Callbacks, TrainingInterrupted

    if not from_environment().main:  # another torchrun process: rank 0 shows progress and talks to MLflow
        try:
            return train_fn(None, None)
        except TrainingInterrupted as stop:
            raise typer.Exit(128 + stop.signum) from None

    bar = training_bar(TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[losses]}"))
    console = bar.console
    with bar:
        loading = bar.add_task("loading images", total=to_load, rate="", losses="")
        training = bar.add_task("training", total=None, start=False, rate="", losses="")

        def on_start(step: int, total: int) -> None:
            bar.update(loading, visible=False)
            bar.start_task(training)
            bar.update(training, total=total, completed=step)

        def on_step(report) -> None:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in report.losses.items())
            bar.update(
                training,
                completed=report.step,
                description=f"epoch {report.epoch}",
                rate=f"{report.images_per_second:.1f} img/s",
                losses=losses,
            )

        def on_log(row: dict) -> None:
            if not console.is_terminal:
                losses = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("step", "epoch", "lr"))
                print(f"epoch {row['epoch']}  step {row['step']}  {losses}  lr {row['lr']:.3g}", file=sys.stderr, flush=True)

        callbacks = Callbacks(on_start=on_start, on_step=on_step, on_log=on_log)
        tracker = None
        if mlflow_experiment:
            from stages.tracking import TrainingTracker

            tracker = TrainingTracker(mlflow_experiment, output_dir, params)

            def on_step_tracked(report) -> None:
                on_step(report)
                tracker.on_step(report)

            callbacks.on_step, callbacks.on_sample, callbacks.sample_freq = on_step_tracked, tracker.on_sample, sample_freq
        try:
            summary = train_fn(callbacks, lambda n: bar.advance(loading, n))
        except TrainingInterrupted as stop:
            if tracker:
                tracker.finish(None, status="KILLED")
            name = signal.Signals(stop.signum).name
            console.print(f"{name}: stopped at step {stop.step}; checkpoint saved in {output_dir}. Rerun to resume.")
            raise typer.Exit(128 + stop.signum) from None
    if tracker:
        if not summary.get("already_complete"):
            tracker.mlflow.log_metrics({k: v for k, v in summary.get("metrics", {}).items() if isinstance(v, float)})
        tracker.finish(None if summary.get("already_complete") else output_dir / "generator.pt")
    if summary.get("already_complete"):
        console.print(f"{output_dir}: training already complete ({summary['steps']} steps); nothing to do.")
    else:
        console.print(f"trained {summary['steps']} steps over {summary['images']} images -> {output_dir}")
    return summary


if __name__ == "__main__":
    app()
