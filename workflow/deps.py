"""dvc.yaml's code deps, from the import graph, so that editing any code a stage runs reruns it.

A stage's command is ``pix2pix NAME ...``: stages/NAME.py (``pix2pix cgan train``: stages/cgan.py).
stages/code_deps.py walks the imports from that module (`pix2pix train --restart-if-changed`
digests the same files, so a checkpoint changes exactly when DVC reruns its stage).

Lab colorization's code (pix2pix/color.py) runs only for experiments with ``lab_colorization``.
DVC interpolates no lists into deps, so an experiment stage that reaches it names one path per
experiment instead, ``${item.task_code}``, which dvc.yaml's ``vars`` set from params.yaml: color.py
for Lab experiments, task.py (a dep of theirs anyway) for the others. Rewrite dvc.yaml's code deps
(tests/unit/test_deps.py checks them) with:

    python -m workflow.deps
"""
from __future__ import annotations

import io
from pathlib import Path

import yaml

from stages.code_deps import LAB_CODE, PACKAGES, code

ROOT = Path(__file__).resolve().parent.parent
TASK_CODE = "pix2pix/task.py"  # what RGB experiments name for ${item.task_code}
TASK_CODE_DEP = "${item.task_code}"
EXPERIMENTS = "${experiments}"  # the foreach of the experiment stages


def command_module(cmd: str) -> str:
    """The stage module of a ``pix2pix NAME ...`` command."""
    words = cmd.split()
    if words[:1] != ["pix2pix"] or len(words) < 2:
        raise ValueError(f"not a pix2pix command: {cmd!r}")
    return f"stages.{words[1].replace('-', '_')}"


def is_code(dep: str) -> bool:
    return dep == TASK_CODE_DEP or dep.split("/")[0] in PACKAGES


def stage_code(cmd: str, experiment_stage: bool) -> list[str]:
    """The code deps of a stage definition (per-experiment ones as ``${item.task_code}``)."""
    files = code(command_module(cmd))
    if experiment_stage and LAB_CODE in files:
        files = (files - {LAB_CODE}) | {TASK_CODE_DEP}
    return sorted(files)


def task_code(params: dict) -> dict[str, dict[str, str]]:
    """dvc.yaml's vars entry: each experiment's ``task_code``."""
    return {
        name: {"task_code": LAB_CODE if experiment.get("train", {}).get("lab_colorization") else TASK_CODE}
        for name, experiment in params["experiments"].items()
    }


def rewrite(pipeline_text: str, params: dict) -> str:
    """dvc.yaml with its code deps generated; data deps, comments and everything else kept."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    rt.preserve_quotes = True
    pipeline = rt.load(pipeline_text)
    for stage in pipeline["stages"].values():
        experiment_stage = stage.get("foreach") == EXPERIMENTS
        definition = stage.get("do", stage)
        definition["deps"][:] = [dep for dep in definition["deps"] if not is_code(dep)] + stage_code(definition["cmd"], experiment_stage)
    if pipeline["vars"][0]["experiments"] != task_code(params):  # replaced only when it changes: keeps the blank line after it
        pipeline["vars"][0]["experiments"] = task_code(params)
    out = io.StringIO()
    rt.dump(pipeline, out)
    return out.getvalue()


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    path.write_text(rewrite(path.read_text(), yaml.safe_load((ROOT / "params.yaml").read_text())))
