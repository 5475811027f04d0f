"""Train and evaluate log to a real `mlflow server` on 127.0.0.1; read everything back over REST."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.http import wait_until_answering


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, endpoint: str, payload: dict | None = None, **query) -> dict:
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until_answering(f"{base}/health", server, tmp_path / "server.log", timeout=120)
    yield base
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def test_train_and_evaluate_log_to_a_real_server(mlflow_server, tmp_path, make_pairs, run_cli, tiny_args):
    data = make_pairs(tmp_path / "pairs", count=4)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    run_dir = tmp_path / "run"
    run_cli(
        "stages.train", "-i", str(data), "-o", str(run_dir), *tiny_args, "--max_steps", "6", "--sample_freq", "3",
        "--mlflow-experiment", "facades-test", env=env, check=True,
    )  # fmt: skip
    run_cli("stages.evaluate", "-i", str(data), "-c", str(run_dir), "-o", str(tmp_path / "res"), "--train_dir", str(data), env=env, check=True)

    experiment = api(mlflow_server, "experiments/get-by-name", experiment_name="facades-test")["experiment"]
    runs = api(mlflow_server, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 1
    run = runs[0]
    run_id = run["info"]["run_id"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["train.ngf"] == "8" and params["train.direction"] == "AtoB"
    assert any(tag["key"] == "mlflow.source.git.commit" for tag in run["data"]["tags"])

    history = api(mlflow_server, "metrics/get-history", run_id=run_id, metric_key="G_L1")["metrics"]
    assert [point["step"] for point in history] == [1, 2, 3, 4, 5, 6]
    for key in ("G_GAN", "D_real", "D_fake", "lr"):
        assert len(api(mlflow_server, "metrics/get-history", run_id=run_id, metric_key=key)["metrics"]) == 6
    latest = {m["key"]: m["value"] for m in api(mlflow_server, "runs/get", run_id=run_id)["run"]["data"]["metrics"]}
    assert {"eval_l1", "eval_psnr", "eval_ssim", "baseline_identity_l1", "baseline_mean_ssim"} <= latest.keys()

    images = api(mlflow_server, "artifacts/list", run_id=run_id, path="images").get("files", [])
    steps = {name.split("+step+")[1].split("+")[0] for name in (Path(f["path"]).name for f in images) if name.endswith(".png")}
    assert steps == {"3", "6"}
    model = api(mlflow_server, "artifacts/list", run_id=run_id, path="model")["files"]
    assert [Path(f["path"]).name for f in model] == ["generator.pt"]
