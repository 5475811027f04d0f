"""`snakemake --profile slurm` on a real single-node SLURM (scripts/slurm-local.sh), at test scale.

Under CI (CI=true) SLURM has to start; elsewhere the test is skipped when it cannot (no root, no apt).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest


@pytest.fixture(scope="module")
def cluster(repo_root):
    """A running SLURM; stopped afterwards when this fixture started it."""
    script = str(repo_root / "scripts" / "slurm-local.sh")
    if subprocess.run([script, "status"], capture_output=True).returncode == 0:
        yield
        return
    started = subprocess.run([script, "start"], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        reason = "SLURM cannot start here: " + ((started.stderr or started.stdout).strip().splitlines() or ["no output"])[-1]
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield
    subprocess.run([script, "stop"], check=True, timeout=120)


def slurm_jobs(ids: list[str]) -> list[dict[str, str]]:
    """What ``scontrol show job`` knows of these jobs (finished ones stay an hour: MinJobAge)."""
    shown = subprocess.run(["scontrol", "--oneliner", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in shown.splitlines()]
    return [job for job in jobs if job.get("JobId") in ids]


def test_every_stage_runs_as_a_slurm_job(cluster, clone, dvc, experiments, snakemake, workflow_module):
    stages = workflow_module("graph").load(clone).stages
    output = snakemake(
        "--profile", "slurm",
        # This test's cluster only: no slurmdbd (so squeue, not sacct), quick polls, a small node.
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--default-resources", "runtime=10", "mem_mb=1000", "cpus_per_task=1",
        "--set-resources", *(f"{name}:mem_mb=1000" for name, stage in stages.items() if "mem_mb" in stage.resources),
        cwd=clone,
    )  # fmt: skip
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    assert len(ids) == len(stages), output[-4000:]
    jobs = slurm_jobs(ids)
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}
    assert sorted(job["Comment"] for job in jobs) == sorted(f"rule_{name}" for name in stages)
    for job in jobs:  # train and evaluate asked for the GPU, through dvc.yaml's meta
        wants_gpu = job["Comment"].startswith(("rule_train@", "rule_evaluate@"))
        assert ("gpu" in job.get("TresPerJob", "")) == wants_gpu, job

    for name in experiments:
        assert (clone / "models" / name / "generator.pt").is_file()
        assert json.loads((clone / "results" / name / "metrics.json").read_text())["count"] > 0
    assert (clone / "reports" / "index.html").is_file()
    assert "up to date" in dvc("status", cwd=clone).stdout
