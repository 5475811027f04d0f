"""Pipeline stages: one Typer command per step, thin glue around the ``pix2pix`` library."""
