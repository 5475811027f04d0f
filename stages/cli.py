"""The ``pix2pix`` console command: every stage module's command as a subcommand.

Stage modules import torch and friends inside their command functions, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import Annotated

import typer

from stages.options import normalized

# (module under stages/, extra names the same command answers to)
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("download", ()),
    ("resize", ()),
    ("blank", ()),
    ("combine", ()),
    ("grayscale", ()),
    ("edges", ()),
    ("split", ()),
    ("train", ()),
    ("evaluate", ("test",)),
    ("report", ()),
    ("translate", ()),
    ("export", ()),
    ("import_checkpoint", ()),  # the command is import-checkpoint; import_checkpoint works too (normalised)
    ("serve", ()),
    ("promote", ()),
    ("compare", ()),
]

# modules whose commands stay grouped under one subcommand: `pix2pix cgan train`
GROUPS: list[str] = ["cgan"]

app = typer.Typer(
    help="pix2pix: image-to-image translation with a conditional GAN, as a reproducible pipeline.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"token_normalize_func": normalized},  # `pix2pix import_checkpoint` is `import-checkpoint`
)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"pix2pix {version('pix2pix-pipeline')}")
        raise typer.Exit()


@app.callback()
def main(
    show: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """pix2pix: image-to-image translation with a conditional GAN, as a reproducible pipeline."""


for module_name, aliases in STAGES:
    module = importlib.import_module(f"stages.{module_name}")
    for info in module.app.registered_commands:
        app.registered_commands.append(info)
        for alias in aliases:
            app.command(alias, help=f"Alias of `{info.name or module_name}`.", hidden=False)(info.callback)

for module_name in GROUPS:
    app.add_typer(importlib.import_module(f"stages.{module_name}").app, name=module_name)

if __name__ == "__main__":
    app()
