"""The Snakefile runs the graph of dvc.yaml, and DVC agrees with what it made.

One temporary clone at test scale (the ``clone`` fixture) is shared by the tests that need one;
they run in file order: graph and lint checks, a full run, param edits, file dates against content, a
stage that DVC reran, a failed training that is retried and resumes, then a training on two processes.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import torch
import yaml

from pix2pix import checkpoint as ckpt

LOCAL = ("--profile", "profiles/local")
FACADES_MODEL = "models/facades/generator.pt"


def job_blocks(output: str) -> dict[str, dict[str, str]]:
    """Rule name -> its indented ``key: value`` lines (input, output, reason...) in Snakemake's output."""
    return {
        match.group(1): dict(line.strip().split(": ", 1) for line in match.group(2).splitlines() if ": " in line)
        for match in re.finditer(r"^(?:local)?rule (\S+):\n((?:    .*\n)+)", output, re.MULTILINE)
    }


def resumed_from(clone: Path, stage: str = "train@facades") -> int:
    """The step the job's training said it resumed from (its first line), 0 if it started from scratch."""
    found = re.search(r"resuming from step (\d+) of", (clone / "logs" / f"{stage}.log").read_text())
    return int(found.group(1)) if found else 0


def test_rules_are_the_stages_of_dvc_yaml(clone, dvc, snakemake, workflow_module):
    graph = workflow_module("graph").load(clone)
    names = set(graph.stages)
    assert names == set(dvc("stage", "list", "--name-only", cwd=clone).stdout.split())
    listed = snakemake("--list-rules", cwd=clone).splitlines()
    assert {line for line in listed if " " not in line} == names | {"all"}  # a name a line, then notes (profiles/default)

    producer = {path: stage.name for stage in graph.stages.values() for path in stage.tracked()}
    edges = {(producer[path], stage.name) for stage in graph.stages.values() for path in graph.inputs(stage) if path in producer}
    assert edges == set(re.findall(r'"(\S+)" -> "(\S+)"', dvc("dag", "--dot", cwd=clone).stdout))

    jobs = job_blocks(snakemake("-n", cwd=clone))
    assert jobs.keys() == names | {"all"}
    for stage in graph.stages.values():
        assert set(jobs[stage.name]["input"].split(", ")) == set(graph.inputs(stage)), stage.name
        assert jobs[stage.name]["output"].split(", ") == stage.tracked(), stage.name
    assert "gpu=1" in jobs["train@facades"]["resources"] and "gpu=1" in jobs["evaluate@facades"]["resources"]
    assert jobs["train@facades"]["output"] == FACADES_MODEL  # the run folder's last file: see workflow/graph.py


def test_lint_finds_nothing(clone, snakemake):
    output = snakemake("--lint", cwd=clone)
    assert "Congratulations, your workflow is in a good condition!" in output and "Lints for" not in output


def test_invalid_params_stop_snakemake_before_any_job(clone, snakemake_executable):
    result = subprocess.run([snakemake_executable, "-n", "--config", "resize={size: wide}"], cwd=clone, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Error validating config file" in output
    assert "'wide' is not of type 'integer'" in output


def test_snakemake_builds_every_output_and_dvc_agrees(clone, dvc, experiments, snakemake, workflow_module):
    output = snakemake(*LOCAL, cwd=clone)
    assert "Trying to restart" not in output  # no job failed on the way (parallel MLflow start-up included)
    for name in experiments:
        assert (clone / "models" / name / "checkpoint.pt").is_file()
        assert json.loads((clone / "results" / name / "metrics.json").read_text())["count"] > 0
        assert (clone / "reports" / name / "index.html").is_file()
    assert (clone / "reports" / "index.html").is_file() and (clone / "mlflow.db").is_file()

    assert "up to date" in dvc("status", cwd=clone).stdout  # onsuccess: dvc commit
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    graph = workflow_module("graph").load(clone)
    assert lock.keys() == graph.stages.keys()
    for name, stage in graph.stages.items():  # DVC's own record of each stage, against the rule's source
        assert lock[name]["cmd"] == stage.cmd
        assert {dep["path"] for dep in lock[name]["deps"]} == set(stage.deps)
        assert set(lock[name].get("params", {}).get("params.yaml", {})) == set(stage.params)
        assert {out["path"] for out in lock[name]["outs"]} == set(stage.outs)


def test_param_edits_rerun_what_dvc_reruns(clone, dvc, edit_params, snakemake):
    edit_params(clone, lambda p: p["blank"].update(fraction=0.4))
    assert set(job_blocks(snakemake("-n", cwd=clone))) == {
        "blank_photos", "combine@inpainting", "split@inpainting",
        "train@inpainting", "evaluate@inpainting", "report@inpainting", "report_index", "compare", "all",
    }  # fmt: skip
    edit_params(clone, lambda p: p["blank"].update(fraction=0.3))  # back to the recorded value: nothing to do
    assert "Nothing to be done" in snakemake("-n", cwd=clone)

    edit_params(clone, lambda p: p["experiments"]["facades"]["train"].update(lr=0.0001))
    status = dvc("status", cwd=clone).stdout
    assert "train@facades" in status and "train@inpainting" not in status
    jobs = job_blocks(snakemake("-n", cwd=clone))
    assert set(jobs) == {"train@facades", "evaluate@facades", "report@facades", "report_index", "compare", "all"}
    assert ".snakemake/dvc/train@facades" in jobs["train@facades"]["reason"]  # its stamp: DVC finds it stale

    assert set(job_blocks(snakemake(*LOCAL, cwd=clone))) == set(jobs)
    assert resumed_from(clone) == 0  # a new job trained from scratch, not on from the old checkpoint
    assert "up to date" in dvc("status", cwd=clone).stdout
    assert not list((clone / ".snakemake" / "resume").iterdir())


def test_file_dates_rerun_nothing_content_does_under_both_tools(clone, dvc, experiments, snakemake, workflow_module):
    """Snakemake reruns what `dvc status` finds stale, by content: a touch or a checkout (new dates) reruns nothing."""

    def stale() -> set[str]:
        return set(json.loads(dvc("status", "--json", cwd=clone).stdout))

    def planned() -> set[str]:
        return set(job_blocks(snakemake("-n", cwd=clone))) - {"all"}

    library = clone / "pix2pix" / "prep" / "split.py"
    os.utime(library)  # newer than every output, content unchanged
    os.utime(next((clone / "data" / "split" / "facades" / "train").iterdir()))
    assert stale() == planned() == set()

    graph = workflow_module("graph").load(clone)  # a fresh clone: outputs checked out anew, no .snakemake
    for out in (clone / out for stage in graph.stages.values() for out in stage.outs):
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    shutil.rmtree(clone / ".snakemake")
    dvc("checkout", cwd=clone)
    dates = random.Random(0)
    for name in (*(out for stage in graph.stages.values() for out in stage.outs), "pix2pix", "params.yaml"):
        for path in [clone / name, *(clone / name).rglob("*")]:  # outputs older than inputs, at random
            when = dates.uniform(1e9, 1.7e9)
            os.utime(path, (when, when))
    assert stale() == planned() == set()

    original = library.read_text()
    library.write_text(original + "# an edit\n")
    assert stale() == {f"split@{name}" for name in experiments}
    assert planned() == {f"{stage}@{name}" for stage in ("split", "train", "evaluate", "report") for name in experiments} | {"report_index", "compare"}
    library.write_text(original)  # the recorded content again, under a new date
    assert stale() == planned() == set()


def test_a_stage_that_dvc_reran_is_not_rerun_by_snakemake(clone, dvc, edit_params, snakemake):
    """Snakemake's own record of the params it ran with (now out of date) reruns nothing: profiles/default."""
    edit_params(clone, lambda p: p["data"]["facades"].update(seed=1))
    dvc("repro", "--single-item", "download_facades", cwd=clone)
    assert set(json.loads(dvc("status", "--json", cwd=clone).stdout)) == {"split@facades"}
    assert set(job_blocks(snakemake("-n", cwd=clone))) == {
        "split@facades", "train@facades", "evaluate@facades", "report@facades", "report_index", "compare", "all",
    }  # fmt: skip
    edit_params(clone, lambda p: p["data"]["facades"].update(seed=0))
    dvc("repro", "--single-item", "download_facades", cwd=clone)  # the recorded data again
    assert "Nothing to be done" in snakemake("-n", cwd=clone) and "up to date" in dvc("status", cwd=clone).stdout


def _train_process(parent: psutil.Process) -> psutil.Process | None:
    """The python process of `pix2pix train` under a Snakemake run (not the shell around it)."""
    for child in parent.children(recursive=True):
        try:
            argv = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "train" in argv and any(arg.endswith("/pix2pix") for arg in argv[:2]):
            return child
    return None


def test_a_failed_training_is_retried_and_resumes_from_its_checkpoint(clone, edit_params, snakemake, snakemake_executable):
    """SIGTERM (what preemption sends) mid-run; the retry resumes and ends with the uninterrupted weights."""
    edit_params(clone, lambda p: p["experiments"]["facades"]["train"].update(n_epochs=25, n_epochs_decay=0, save_freq=10))
    snakemake(*LOCAL, FACADES_MODEL, cwd=clone)
    checkpoint = clone / "models" / "facades" / ckpt.CHECKPOINT_NAME
    whole = ckpt.load(checkpoint)
    assert whole["step"] == 150  # 6 images, 25 epochs

    finished = checkpoint.stat().st_ino
    command = [snakemake_executable, *LOCAL, FACADES_MODEL, "--forcerun", "train@facades", "--retries", "1"]
    snakemake_run = subprocess.Popen(command, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not (checkpoint.exists() and checkpoint.stat().st_ino != finished):  # the new run's first checkpoint
        assert snakemake_run.poll() is None and time.monotonic() < deadline, "no new checkpoint appeared"
        time.sleep(0.02)
    trainer = _train_process(psutil.Process(snakemake_run.pid))
    assert trainer is not None
    trainer.terminate()
    output, _ = snakemake_run.communicate(timeout=600)
    assert snakemake_run.returncode == 0, output[-4000:]
    assert "Trying to restart job" in output

    resumed = ckpt.load(checkpoint)
    assert resumed_from(clone) > 10  # the retry resumed from the checkpoint the killed attempt wrote
    for key in ("generator", "discriminator"):
        assert all(torch.equal(whole[key][name], resumed[key][name]) for name in whole[key]), key


def test_two_gpus_train_as_two_ddp_processes(clone, snakemake):
    snakemake(*LOCAL, FACADES_MODEL, "--forcerun", "train@facades", "--set-resources", "train@facades:gpu=2", cwd=clone)
    saved = ckpt.load(clone / "models" / "facades" / ckpt.CHECKPOINT_NAME)
    assert saved["world_size"] == 2 and saved["step"] == 75  # 3 images per process and epoch
