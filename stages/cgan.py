"""`pix2pix cgan`: the article's first model, a conditional GAN that draws the digit you ask for.

`train` learns G(z|y) and D(x|y) on handwritten digits (scikit-learn's, no download, or MNIST's
IDX files with --mnist-dir) and checks with a classifier that G draws the requested digit;
`sample` draws digits from a trained run. Rerunning `train` on the same folder resumes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field

from pix2pix.options import DeviceName, Flags, Seed
from pix2pix.train.config import CGANConfig
from stages.common import stage_app, user_errors
from stages.options import with_options
from stages.params import ParamsFile, ParamsSection

app = stage_app(__doc__)


@app.command("train")
@user_errors
@with_options(CGANConfig, "config")
def train(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Run folder: checkpoint.pt, generator.pt, losses.csv, samples/, per_digit.json, metrics.json. An existing run here is resumed.", rich_help_panel="Paths")],
    config: CGANConfig,
    mlflow_experiment: Annotated[Optional[str], typer.Option("--mlflow-experiment", help="Log params, losses, sample grids, accuracies and the generator to this MLflow experiment \\[default: no tracking].", rich_help_panel="Tracking")] = None,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Train the conditional DCGAN on digits; metrics.json says how often it draws the digit asked for."""
    from pix2pix.data.digits import load_data
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


class SampleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[
        list[Annotated[int, Field(ge=0, le=9)]] | None,
        Flags("Samples", "-l"),
        Field(description="Digit to draw; repeat for several \\[default: all ten]."),
    ] = None
    count: Annotated[int, Flags("Samples"), Field(ge=1, description="Samples per label.")] = 16
    seed: Annotated[Seed, Flags("Samples"), Field(description="Seed of the noise: the same seed draws the same digits.")] = 0
    device: DeviceName = "auto"


@app.command("sample")
@user_errors
@with_options(SampleOptions)
def sample(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A `pix2pix cgan train` run folder, or its generator.pt / checkpoint.pt.", rich_help_panel="Paths")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Gets LABEL_NNN.png per sample and grid.png (one row per label).", rich_help_panel="Paths")],
    options: SampleOptions,
) -> None:
    """Draw the digits you ask for with a trained conditional GAN."""
    from pix2pix.data.digits import N_CLASSES
    from pix2pix.data.images import save_image
    from pix2pix.nn.device import select_device
    from pix2pix.nn.digits import draw, generator_from_checkpoint

    labels = list(dict.fromkeys(options.label)) if options.label else list(range(N_CLASSES))
    count, seed = options.count, options.seed
    generator, _ = generator_from_checkpoint(checkpoint, select_device(options.device))
    images, grid = draw(generator, labels, count, seed)
    for index, image in enumerate(images):
        save_image(image, output_dir / f"{labels[index // count]}_{index % count:03d}.png")
    save_image(grid, output_dir / "grid.png")
    typer.echo(f"{len(images)} digits ({', '.join(map(str, labels))}) -> {output_dir}", err=True)


if __name__ == "__main__":
    app()
