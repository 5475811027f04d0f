"""`pix2pix cgan`: the article's first model, a conditional GAN that draws the digit you ask for.

`train` learns G(z|y) and D(x|y) on handwritten digits (scikit-learn's, no download, or MNIST's
IDX files with --mnist-dir) and checks with a classifier that G draws the requested digit;
`sample` draws digits from a trained run. Rerunning `train` on the same folder resumes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common import stage_app, user_errors, validated
from stages.params import ParamsFile, ParamsSection

app = stage_app(__doc__)


@app.command("train")
@user_errors
def train(
    output_dir: Annotated[Path, typer.Option("--output-dir", "--output_dir", "-o", help="Run folder: checkpoint.pt, generator.pt, losses.csv, samples/, metrics.json. An existing run here is resumed.")],
    mnist_dir: Annotated[Optional[Path], typer.Option("--mnist-dir", "--mnist_dir", help="Folder with MNIST's train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] (default: the 1,797 8x8 digits that ship with scikit-learn).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", "--max-epochs", "--max_epochs", help="Passes over the digits (30: about a minute on 2 CPU cores for scikit-learn's digits; MNIST is 33x larger).")] = 30,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", "--max_steps", help="Stop after this many steps (wins over epochs).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", help="Digits per step.")] = 64,
    nz: Annotated[int, typer.Option(help="Length of the noise vector z (and of the label embedding).")] = 64,
    ngf: Annotated[int, typer.Option(help="Generator filters in its last hidden layer.")] = 32,
    ndf: Annotated[int, typer.Option(help="Discriminator filters in its first layer.")] = 32,
    mode_seeking: Annotated[float, typer.Option("--mode-seeking", "--mode_seeking", help="Weight of the mode-seeking term (MSGAN) that makes different z draw different digits; 0 is the article's plain objective, which soon draws one image per digit.")] = 0.3,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = 0.5,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = 0.999,
    seed: Annotated[int, typer.Option(help="Seed for init, data order and noise: CPU runs repeat bit for bit.")] = 0,
    save_freq: Annotated[int, typer.Option("--save-freq", "--save_freq", help="Steps between checkpoints (one is always written at the end).")] = 500,
    log_freq: Annotated[int, typer.Option("--log-freq", "--log_freq", help="Steps between rows of losses.csv.")] = 10,
    grid_columns: Annotated[int, typer.Option("--grid-columns", "--grid_columns", help="Samples per digit in the sample grids (10 rows, row k = digit k).")] = 10,
    eval_per_digit: Annotated[int, typer.Option("--eval-per-digit", "--eval_per_digit", help="Samples per digit for the conditioning accuracy.")] = 100,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    mlflow_experiment: Annotated[Optional[str], typer.Option("--mlflow-experiment", "--mlflow_experiment", help="Log params, losses, sample grids, accuracies and the generator to this MLflow experiment (default: no tracking).")] = None,
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Train the conditional DCGAN on digits; metrics.json says how often it draws the digit asked for."""
    from pix2pix.data.digits import load_data
    from pix2pix.train.cgan import CGANConfig
    from pix2pix.train.cgan import train as train_cgan
    from stages.train import run_tracked

    config = validated(
        CGANConfig,
        mnist_dir=str(mnist_dir) if mnist_dir else None, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        nz=nz, ngf=ngf, ndf=ndf, mode_seeking=mode_seeking, lr=lr, beta1=beta1, beta2=beta2, seed=seed, save_freq=save_freq, log_freq=log_freq,
        grid_columns=grid_columns, eval_per_digit=eval_per_digit, device=device,
    )  # fmt: skip
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
    output_dir: Annotated[Path, typer.Option("--output-dir", "--output_dir", "-o", help="Gets LABEL_NNN.png per sample and grid.png (one row per label).")],
    label: Annotated[Optional[list[int]], typer.Option("--label", "-l", help="Digit to draw; repeat for several (default: all ten).")] = None,
    count: Annotated[int, typer.Option(help="Samples per label.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same seed draws the same digits.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    params_file: ParamsFile = None,
    section: ParamsSection = None,
) -> None:
    """Draw the digits you ask for with a trained conditional GAN."""
    from pix2pix.data.digits import N_CLASSES, SEED_MAX
    from pix2pix.data.images import save_image
    from pix2pix.device import select_device
    from pix2pix.errors import UserError
    from pix2pix.nn.digits import draw, generator_from_checkpoint

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
