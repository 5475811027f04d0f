"""What Snakemake shows of the pipeline without running it: each job's shell command (`snakemake -n -p`)
and the conda env that nodes without the repo's .venv run the jobs in.

The report (`snakemake --report`) of a finished run: tests/integration/test_snakemake_report_and_dry_run.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib

import yaml

TRAIN_CMD = "pix2pix train --output_dir models/x --restart-if-changed"


def _graph(workflow_module):
    graph_module = workflow_module("graph")
    stage = graph_module.Stage
    return graph_module, graph_module.Graph([
        stage("split", "pix2pix split --output_dir data/split", ("data/raw",), (), ("data/split",)),
        stage("train@x", TRAIN_CMD, ("data/split",), (), ("models/x/generator.pt", "models/x/checkpoint.pt"), {"resumable": "generator.pt", "torchrun": True}),
    ])  # fmt: skip


def test_a_job_runs_its_stage_command_with_the_venv_first_on_path(workflow_module):
    graph_module, graph = _graph(workflow_module)
    command = graph.command("split", {}, threads=1, resources={})
    assert command == f'export PATH={shlex.quote(str(graph_module.BIN))}:"$PATH"; pix2pix split --output_dir data/split > logs/split.log 2>&1'
    assert graph.command("split", {}, threads=1, resources={}, venv=False) == "pix2pix split --output_dir data/split > logs/split.log 2>&1"


def test_a_resumable_job_keeps_its_bookkeeping_in_its_shell_command(workflow_module):
    _, graph = _graph(workflow_module)
    command = graph.command("train@x", {}, threads=1, resources={"gpu": 1}, venv=False)
    assert command == f"python -m workflow.job resume train@x && {TRAIN_CMD} > logs/train@x.log 2>&1 && rm .snakemake/resume/train@x"


def test_gpus_and_cpus_of_a_job_set_its_processes_and_threads(workflow_module):
    _, graph = _graph(workflow_module)
    command = graph.command("train@x", {}, threads=1, resources={"gpu": 2, "cpus_per_task": 8}, venv=False)
    assert command.startswith("export OMP_NUM_THREADS=8; python -m workflow.job resume train@x && ")
    assert f"&& torchrun --standalone --nproc_per_node 2 --no-python {TRAIN_CMD} > logs/train@x.log" in command
    assert "OMP_NUM_THREADS" not in graph.command("train@x", {}, threads=8, resources={"cpus_per_task": 8}, venv=False)
    assert "torchrun" not in graph.command("split", {}, threads=1, resources={"gpu": 2})  # only stages that ask for it


def test_the_resume_helper_names_a_bad_stage_in_one_line(repo_root):
    result = subprocess.run([sys.executable, "-m", "workflow.job", "resume", "split@facades"], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and result.stderr == "error: dvc.yaml has no resumable stage 'split@facades'\n"


def test_the_nodes_conda_env_pins_pyprojects_torch_and_installs_this_repo(repo_root):
    envs = repo_root / "workflow" / "envs"
    env = yaml.safe_load((envs / "pix2pix.yaml").read_text())
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    python = re.match(r">=(\d+\.\d+),<", project["requires-python"]).group(1)
    assert f"python={python}" in env["dependencies"]
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    torch_pin = next(dep for dep in project["dependencies"] if dep.startswith("torch"))
    assert torch_pin in pip
    deploy = (envs / "pix2pix.post-deploy.sh").read_text()  # Snakemake runs it in the new env, from the repo root
    assert re.search(r"^python -m pip install .*-e \.$", deploy, re.MULTILINE)
    assert re.search(r'conda:\s+"workflow/envs/pix2pix.yaml"', (repo_root / "Snakefile").read_text())
