"""The ``pix2pix`` console command: every stage module's command as a subcommand.

Stage modules import torch and friends inside their command functions, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib

import typer

# (module under stages/, extra names the same command answers to)
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("train", ()),
    ("evaluate", ("test",)),
]

app = typer.Typer(
    help="pix2pix: image-to-image translation with a conditional GAN, as a reproducible pipeline.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

for module_name, aliases in STAGES:
    module = importlib.import_module(f"stages.{module_name}")
    for info in module.app.registered_commands:
        app.registered_commands.append(info)
        for alias in aliases:
            app.command(alias, help=f"Alias of `{info.name or module_name}`.", hidden=False)(info.callback)

if __name__ == "__main__":
    app()
