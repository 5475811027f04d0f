"""Pipeline stages: one Typer command per step, thin glue around the ``pix2pix`` library.

Importing the package tunes the process for speed before any stage imports torch.
"""

from pix2pix.perf import tune_process

tune_process()
