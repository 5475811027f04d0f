"""A rule's bookkeeping as a shell command, so that its rule is a ``shell:`` rule (see workflow/graph.py):

    python -m workflow.job resume NAME    before resumable stage NAME runs (from the repo root)

It keeps the run folder that a failed attempt of the same work left (training resumes from it), else
empties it, and records what the folder is computed for; the rule removes that record once NAME succeeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from workflow import graph


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] != "resume":
        sys.exit("usage: python -m workflow.job resume NAME")
    pipeline = graph.load()
    name = argv[1]
    if name not in pipeline.stages or not pipeline.stages[name].resumable:
        sys.exit(f"error: dvc.yaml has no resumable stage {name!r}")
    pipeline.resume(name, yaml.safe_load(Path("params.yaml").read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
