"""`pix2pix evaluate` (alias `test`): translate a folder with a trained model and score it.

Writes RES/images/NAME-{inputs,outputs,targets}.png, RES/metrics.csv (a row per image) and
RES/metrics.json (means). The whole folder appears at once, when everything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import fail, stage_app, user_errors
from stages.device_options import (
    Amp,
    ChannelsLast,
    Compile,
    CudnnBenchmark,
    Device,
    Tf32,
    acceleration,
)
from stages.params import ParamsFile, ParamsSection
from stages.progress import counting_bar

app = stage_app(__doc__)


@app.command("evaluate")
@user_errors
def evaluate(
    input_dir: Annotated[Path, typer.Option("--input-dir", "--input_dir", "-i", help="Folder of A|B images (or colour photos for a colorization model).")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Run folder written by `pix2pix train`, or a generator.pt / checkpoint.pt file.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "--output_dir", "-o", help="Results folder (replaced as a whole when done).")],
    eval_mode: Annotated[str, typer.Option("--eval-mode", "--eval_mode", help="train: dropout on and each image's own batch-norm statistics, as in the paper and the reference's test.py; eval: running statistics, no dropout.")] = "train",
    size: Annotated[Optional[int], typer.Option(help="Resize each half to SIZE x SIZE first (the reference test does 256) \\[default: native size, any shape].")] = None,
    seed: Annotated[int, typer.Option(help="Seed for test-time dropout.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", min=1, help="Same-sized images per forward pass. In train mode each image keeps its own batch-norm statistics, so only the order of dropout draws depends on it.")] = 8,
    device: Device = "auto",
    amp: Amp = "auto",
    tf32: Tf32 = "auto",
    channels_last: ChannelsLast = "auto",
    cudnn_benchmark: CudnnBenchmark = "auto",
    compile: Compile = False,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Translate every image in INPUT_DIR and compute L1, PSNR, SSIM (and CIEDE2000 for colorization)."""
    from pix2pix.data.images import list_images
    from pix2pix.files import atomic_directory
    from pix2pix.infer.evaluate import EVAL_MODES
    from pix2pix.infer.evaluate import evaluate as evaluate_model
    from pix2pix.infer.load import generator_from_checkpoint
    from pix2pix.task import Task

    if eval_mode not in EVAL_MODES:
        raise fail(f"--eval_mode {eval_mode!r}: expected train or eval")
    if size is not None and size < 1:
        raise fail(f"--size {size}: must be positive")
    paths = list_images(input_dir)
    accel = acceleration(device, amp, tf32, channels_last, cudnn_benchmark, compile)
    generator, config = generator_from_checkpoint(checkpoint, accel.device)
    task = Task(config["direction"], config["lab_colorization"])
    with counting_bar("evaluating", len(paths)) as advance, atomic_directory(output_dir) as staging:
        means = evaluate_model(generator, task, paths, staging, eval_mode, size, seed, progress=advance, batch_size=batch_size, acceleration=accel)
    summary = "  ".join(f"{k} {v:.4f}" for k, v in means.items())
    typer.echo(f"{len(paths)} images -> {output_dir}  {summary}")
    if checkpoint.is_dir():
        from stages.tracking import log_evaluation

        if log_evaluation(checkpoint, means, output_dir):
            typer.echo("metrics logged to the training run in MLflow")


if __name__ == "__main__":
    app()
