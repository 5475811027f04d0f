"""`pix2pix cgan`: the article's first model, a conditional GAN that draws the digit you ask for.

`train` learns G(z|y) and D(x|y) on handwritten digits (scikit-learn's, no download, or MNIST's
IDX files with --mnist-dir) and checks with a classifier that G draws the requested digit;
`sample` draws digits from a trained run. Rerunning `train` on the same folder resumes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pix2pix.train.config import CGANConfig
from stages.common import stage_app, user_errors
from stages.options import with_options
from stages.params import ParamsFile, ParamsSection

app = stage_app(__doc__)


@app.command("train")
@user_errors
@with_options(CGANConfig, "config")
def train(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Run folder: checkpoint.pt, generator.pt, losses.csv, samples/, metrics.json. An existing run here is resumed.", rich_help_panel="Paths")],
    config: CGANConfig,
    mlflow_experiment: Annotated[Optional[str], typer.Option("--mlflow-experiment", help="Log params, losses, sample grids, accuracies and the generator to this MLflow experiment \\[default: no tracking].", rich_help_panel="Tracking")] = None,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Train the conditional DCGAN on digits; metrics.json says how often it draws the digit asked for."""
    from pix2pix.train.cgan import load_data
    from pix2pix.train.cgan import train as train_cgan
    from stages.train import run_tracked

    data = load_data(config.mnist_dir)  # bad data fails before an MLflow run is opened
    summary = run_tracked(
        lambda callbacks, _: train_cgan(config, output_dir, callbacks, data),
        output_dir,
        {"cgan": config.model_dump(mode="json"), "data": data.source},
        mlflow_experiment,
    )
    metrics = summary["metrics"]
    typer.echo(
        f"conditioning accuracy {metrics['conditioning_accuracy']:.3f} on {metrics['samples_per_digit']} samples per digit "
        f"(classifier accuracy on held-out real digits {metrics['classifier_accuracy']:.3f}) -> {output_dir / 'metrics.json'}",
        err=True,
    )


@app.command("sample")
@user_errors
def sample(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A `pix2pix cgan train` run folder, or its generator.pt / checkpoint.pt.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Gets LABEL_NNN.png per sample and grid.png (one row per label).")],
    label: Annotated[Optional[list[int]], typer.Option("--label", "-l", help="Digit to draw; repeat for several (default: all ten).")] = None,
    count: Annotated[int, typer.Option(help="Samples per label.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same seed draws the same digits.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Draw the digits you ask for with a trained conditional GAN."""
    from pix2pix.data.images import save_image
    from pix2pix.device import select_device
    from pix2pix.errors import UserError
    from pix2pix.options import SEED_MAX
    from pix2pix.train.cgan import N_CLASSES, draw, generator_from_checkpoint

    labels = list(dict.fromkeys(label)) if label else list(range(N_CLASSES))
    if not all(0 <= digit < N_CLASSES for digit in labels):
        raise UserError(f"option label: digits are 0..9, got {', '.join(map(str, labels))}")
    if count < 1:
        raise UserError(f"option count: must be at least 1, got {count}")
    if not 0 <= seed <= SEED_MAX:
        raise UserError(f"option seed: must be between 0 and {SEED_MAX}, got {seed}")
    generator, _ = generator_from_checkpoint(checkpoint, select_device(device))
    images, grid = draw(generator, labels, count, seed)
    for index, image in enumerate(images):
        save_image(image, output_dir / f"{labels[index // count]}_{index % count:03d}.png")
    save_image(grid, output_dir / "grid.png")
    typer.echo(f"{len(images)} digits ({', '.join(map(str, labels))}) -> {output_dir}", err=True)


if __name__ == "__main__":
    app()
