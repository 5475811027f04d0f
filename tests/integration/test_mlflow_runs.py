"""MLflow runs tell the truth: failed and killed trainings say so, a resumed one continues its run,
the store is the repository's, and evaluate copes with a store that lost the training's run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pix2pix import checkpoint as ckpt

EXPERIMENT = "tracked"


def store(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def runs_of(uri: str) -> list:
    client = store(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def history(uri: str, run, key: str) -> list[int]:
    return [point.step for point in store(uri).get_metric_history(run.info.run_id, key)]


@pytest.fixture
def sqlite_env(tmp_path) -> tuple[dict, str]:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    return {**os.environ, "MLFLOW_TRACKING_URI": uri}, uri


@pytest.fixture
def tracked_train(tiny_args):
    def tracked_train(data: Path, out: Path, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "stages.train", "--input_dir", str(data), "--output_dir", str(out), *tiny_args,
            "--seed", "1", "--mlflow-experiment", EXPERIMENT, *extra,
        ]  # fmt: skip

    return tracked_train


def test_a_training_that_fails_midway_ends_failed_with_its_error_and_metrics(tmp_path, pairs, run_cli, tracked_train, sqlite_env, assert_user_error):
    env, uri = sqlite_env
    out = tmp_path / "run"
    (out / "losses.csv").mkdir(parents=True)  # the first losses row, at step 3, cannot be written
    result = run_cli(*tracked_train(pairs, out, "--max_steps", "10", "--log_freq", "3")[2:], env=env)
    assert_user_error(result, f"{out / 'losses.csv'}: Is a directory")  # an OS error naming its file: one line
    [run] = runs_of(uri)
    assert run.info.status == "FAILED"
    assert "losses.csv" in run.data.tags["pix2pix.error"]
    assert history(uri, run, "G_L1") == [1, 2]


def test_a_refused_training_is_one_line_exit_2_and_a_failed_run(tmp_path, pairs, run_cli, tracked_train, sqlite_env, assert_user_error):
    env, uri = sqlite_env
    out = tmp_path / "run"
    run_cli(*tracked_train(pairs, out, "--max_steps", "2")[2:], env=env, check=True)
    result = run_cli(*tracked_train(pairs, out, "--max_steps", "4", "--ngf", "16")[2:], env=env)
    assert_user_error(result, "ngf 8 -> 16")
    statuses = sorted((run.info.status, run.data.tags.get("pix2pix.error", "")) for run in runs_of(uri))
    assert [status for status, _ in statuses] == ["FAILED", "FINISHED"]  # the finished one is left alone
    assert "ngf 8 -> 16" in statuses[0][1]


def test_sigterm_ends_killed_and_the_rerun_continues_the_same_run(tmp_path, make_pairs, repo_root, tracked_train, sqlite_env):
    env, uri = sqlite_env
    data, out = make_pairs(tmp_path / "data", count=8), tmp_path / "run"
    process = subprocess.Popen(
        tracked_train(data, out, "--max_steps", "100000", "--log_freq", "1"),
        cwd=repo_root, env={**env, "PYTHONPATH": str(repo_root)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "losses.csv").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    [run] = runs_of(uri)
    assert run.info.status == "KILLED"
    stopped = ckpt.load(out / ckpt.CHECKPOINT_NAME)["step"]
    assert history(uri, run, "G_L1") == list(range(1, stopped + 1))

    subprocess.run(
        tracked_train(data, out, "--max_steps", str(stopped + 2), "--log_freq", "1"),
        cwd=repo_root, env={**env, "PYTHONPATH": str(repo_root)}, check=True, capture_output=True,
    )  # fmt: skip
    [resumed] = runs_of(uri)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert history(uri, resumed, "G_L1") == list(range(1, stopped + 3))


def test_the_store_is_the_repositorys_and_evaluate_survives_losing_it(tmp_path, pairs, run_cli, tracked_train):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME")}
    uri = f"sqlite:///{repo / 'mlflow.db'}"

    run_cli(*tracked_train(pairs, Path("../models/m"), "--max_steps", "2")[2:], cwd=repo / "sub", env=env, check=True)
    assert not (repo / "sub" / "mlflow.db").exists() and not (repo / "sub" / "mlruns").exists()
    assert json.loads((repo / "models" / "m" / "mlflow.json").read_text()) == {"experiment": EXPERIMENT}  # no run id, no path
    [trained] = runs_of(uri)
    assert trained.data.tags["pix2pix.run_dir"] == "models/m" and trained.info.run_name == "m"
    assert any(p.name == "generator.pt" for p in (repo / "mlruns").rglob("*"))

    evaluate = ["stages.evaluate", "-i", str(pairs), "-c", "models/m", "-o", "results/m"]
    result = run_cli(*evaluate, cwd=repo, env=env, check=True)
    assert "warning" not in result.stderr
    [run] = runs_of(uri)
    assert run.info.run_id == trained.info.run_id and "eval_l1" in run.data.metrics and run.info.status == "FINISHED"

    (repo / "mlflow.db").unlink()  # another machine, pulled outputs, an applied experiment: no such run
    result = run_cli(*evaluate, cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "models/m" in warnings[0] and "new run" in warnings[0], result.stderr
    [fresh] = runs_of(uri)
    assert fresh.info.status == "FINISHED" and "eval_l1" in fresh.data.metrics and fresh.data.tags["pix2pix.run_dir"] == "models/m"
