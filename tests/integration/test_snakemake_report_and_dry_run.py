"""Snakemake's own views of the pipeline, on a test-scale clone: `snakemake -n -p` prints each job's
real command, and `snakemake --report` of a finished run shows each experiment's results with captions."""

from __future__ import annotations

import re
import zipfile


LOCAL = ("--profile", "profiles/local")


def test_a_dry_run_prints_each_stage_command_as_dvc_runs_it(clone, snakemake, workflow_module):
    stages = workflow_module("graph").load(clone).stages
    output = snakemake("-n", "-p", "--forceall", cwd=clone)
    printed = dict(re.findall(r"^rule (\S+):\n(?:    .*\n)+Shell command: (.*)$", output, re.MULTILINE))
    assert printed.keys() == stages.keys() | {"all"}
    for name, stage in stages.items():
        assert f"{stage.cmd} > logs/{name}.log 2>&1" in printed[name], name


def shown(page: str, files: list[str], path: str, caption: str) -> bool:
    """Whether the report lists ``path`` (a regex) with its caption starting ``caption`` and holds its file."""
    entry = re.search(rf'"{path}": \{{[^{{}}]*"caption": "<p>{re.escape(caption)}.*?"data_uri": "([^"]+)"', page)
    return entry is not None and f"report/{entry.group(1)}" in files


def test_the_report_shows_each_experiment_with_captions(clone, experiments, snakemake):
    snakemake(*LOCAL, cwd=clone)
    snakemake("--report", "report.zip", cwd=clone)
    with zipfile.ZipFile(clone / "report.zip") as archive:
        files = archive.namelist()
        page = archive.read("report/report.html").decode()
    for name in experiments:
        assert shown(page, files, f"reports/{name}/losses\\.png", f"Experiment <strong>{name}</strong>: the training losses"), name
        assert shown(page, files, f"reports/{name}/metrics\\.csv", f"Experiment <strong>{name}</strong>: the metrics table"), name
        assert shown(page, files, f"reports/{name}/images/[^\"]+-outputs\\.png", f"Experiment <strong>{name}</strong>: the generator's output"), name
    assert shown(page, files, "reports/digits-cgan/grid\\.png", "cGAN <strong>digits-cgan</strong>: the sample grid")
    assert shown(page, files, "reports/digits-cgan/losses\\.png", "cGAN <strong>digits-cgan</strong>: the training losses")
    assert "The pix2pix pipeline of <tt" in page  # the report's own description: workflow/report/workflow.rst
