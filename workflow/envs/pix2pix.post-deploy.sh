#!/bin/sh
# Run by Snakemake in the new env of pix2pix.yaml, from the repo root: this repo, editable (the jobs run
# the code that dvc.yaml's deps name, as checked out), with pyproject.toml's pinned dependencies.
set -eu
python -m pip install --no-cache-dir -e .
