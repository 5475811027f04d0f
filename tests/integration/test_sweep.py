"""A sweep as the README runs it: a grid of values queued with `dvc exp run --queue`, two experiments at
once with `dvc queue start -j 2`, both logging to the repository's MLflow store (created by them, at once),
each run named after its DVC experiment, from the baseline's commit, with every param and the dataset's
DVC hash; `dvc exp show` compares them in 100 columns."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.compare import page_data

VENV_BIN = Path(sys.executable).parent
LR_VALUES = ("0.0001", "0.0004")
# README, "Sweeps": the comparison that fits a terminal
EXP_SHOW = ["exp", "show", "--only-changed", "--drop", "Created|State|Executor|.*/"]


def git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=clone, capture_output=True, text=True, check=True).stdout.strip()


def test_a_queued_grid_runs_two_tracked_experiments_at_once(clone, dvc, run_cli):
    dvc("repro", "evaluate@facades", cwd=clone)  # the baseline, committed with its results as a user would
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "baseline")
    baseline = git(clone, "rev-parse", "HEAD")
    for store in ("mlflow.db", "mlruns"):  # the two experiments create the store, at the same time
        shutil.rmtree(clone / store) if (clone / store).is_dir() else (clone / store).unlink()

    dvc("exp", "run", "--queue", "evaluate@facades", "-S", f"++experiments.facades.train.lr={','.join(LR_VALUES)}", cwd=clone)
    dvc("queue", "start", "-j", "2", cwd=clone)
    deadline = time.monotonic() + 900
    while re.search(r"Queued|Running", status := dvc("queue", "status", cwd=clone).stdout):
        assert time.monotonic() < deadline, status
        time.sleep(5)
    names = set(dvc("exp", "ls", "--name-only", cwd=clone).stdout.split())
    assert len(names) == 2 and status.count("Success") == 2, status

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{clone / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("facades")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # not a GenAI experiment in `mlflow ui`
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert runs.keys() == names
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]["split@facades"]
    split_md5 = next(out["md5"] for out in lock["outs"] if out["path"] == "data/split/facades")
    for name, run in runs.items():
        assert run.info.status == "FINISHED" and "eval_l1" in run.data.metrics, name
        assert run.data.tags["pix2pix.dvc_experiment"] == name
        assert run.data.tags["mlflow.source.git.commit"] == baseline
        assert run.data.tags["mlflow.source.name"] == "pix2pix train" and run.data.tags["mlflow.source.type"] == "LOCAL"
        assert run.data.params["train.sample_freq"] == "4" and run.data.params["evaluate.eval_mode"] == "train"
        [dataset] = [given.dataset for given in run.inputs.dataset_inputs]
        assert (dataset.name, dataset.digest) == ("data/split/facades", split_md5)
    assert sorted(float(run.data.params["train.lr"]) for run in runs.values()) == sorted(map(float, LR_VALUES))

    # evaluate's images are DVC plots: `dvc plots diff` sets each experiment's outputs side by side
    diff = json.loads(dvc("plots", "diff", *sorted(names), "--json", "-o", str(clone / "plots_diff"), cwd=clone).stdout)["data"]
    outputs = {path: entries for path, entries in diff.items() if path.startswith("results/facades/images/") and path.endswith("-outputs.png")}
    assert outputs, sorted(diff)
    for path, entries in outputs.items():
        assert sorted(entry["revisions"][0] for entry in entries) == sorted(names), (path, entries)
        images = [Path(entry["url"]).read_bytes() for entry in entries]
        assert images[0] != images[1] and all(image.startswith(b"\x89PNG") for image in images), path  # two learning rates, two outputs

    # and `pix2pix compare --exp` sets them as columns, from the cache, with each one's training samples
    page = clone / "sweep.html"
    run_cli("stages.compare", *(arg for name in sorted(names) for arg in ("--exp", f"{name}:facades")), "-o", str(page), cwd=clone, check=True)
    data = page_data(page.read_text())
    assert len(data["groups"]) == 1 and all(f"<b>{name}</b>" in page.read_text() for name in names)
    assert data["steps"] and all(frames for frames in data["frames"])

    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(clone), "COLUMNS": "100"}
    shown = subprocess.run([str(VENV_BIN / "dvc"), *EXP_SHOW], cwd=clone, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    assert max(map(len, shown.splitlines())) <= 100, shown
    assert all(name in shown for name in names) and all(value in shown for value in LR_VALUES) and " l1 " in shown, shown
