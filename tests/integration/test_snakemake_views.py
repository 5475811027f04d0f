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


def test_the_report_shows_each_experiment_with_captions(clone, experiments, snakemake):
    snakemake(*LOCAL, cwd=clone)
    snakemake("--report", "report.zip", cwd=clone)
    with zipfile.ZipFile(clone / "report.zip") as archive:
        names = archive.namelist()
        page = archive.read(next(name for name in names if name.endswith("/report.html"))).decode()
    for name in experiments:
        assert any(n.endswith(f"reports/{name}/losses.png") for n in names), name
        assert any(n.endswith(f"reports/{name}/metrics.csv") for n in names), name
        assert any(re.search(rf"reports/{name}/images/.+-outputs\.png$", n) for n in names), name
        assert f"Experiment <strong>{name}</strong>: the training losses" in page
        assert f"Experiment <strong>{name}</strong>: the metrics table" in page
        assert f"Experiment <strong>{name}</strong>: the generator" in page
    assert any(n.endswith("reports/digits-cgan/grid.png") for n in names)
    assert "cGAN <strong>digits-cgan</strong>: the sample grid" in page
