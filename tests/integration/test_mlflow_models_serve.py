"""`pix2pix train --register`, `pix2pix promote`, then a real `mlflow models serve -m models:/NAME@champion` on
127.0.0.1 answers an HTTP request with the image `pix2pix translate` makes."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from pix2pix.data.images import read_rgb
from tests.support.http import wait_until_answering


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_champion_is_served_by_mlflow_and_translates_as_pix2pix_translate(tmp_path, make_pairs, run_cli, tiny_args, random_png, repo_root):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    data = make_pairs(tmp_path / "pairs", count=2)
    for name in ("a", "b"):  # a sweep of two runs
        run_cli(
            "stages.cli", "train", "-i", str(data), "-o", str(tmp_path / name), *tiny_args, "--max_steps", "2", "--seed", str(ord(name)),
            "--val-dir", str(data), "--val-freq", "1", "--mlflow-experiment", "sweep", "--register", "facades", env=env, check=True,
        )  # fmt: skip
    promoted = run_cli("stages.cli", "promote", "--experiment", "sweep", "--metric", "val_l1", "--register", "facades", env=env, check=True)
    assert "facades@champion -> version" in promoted.stdout

    image = tmp_path / "input.png"
    image.write_bytes(random_png(32, 48, seed=3))
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    venv_bin = Path(sys.executable).parent  # mlflow starts uvicorn from PATH; the model imports this checkout's pix2pix
    serve_env = {**env, "PATH": f"{venv_bin}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(repo_root)}
    command = [str(venv_bin / "mlflow"), "models", "serve", "-m", "models:/facades@champion", "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=serve_env)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/ping", server, tmp_path / "serve.log", timeout=90)
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(image.read_bytes()).decode()]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    # the champion is the run with the lower val_l1; translate its best.pt (what its model logged) the usual way
    champion = promoted.stdout.split("run ")[1].split(" ")[0]
    run_cli("stages.cli", "translate", "-c", str(tmp_path / champion), "-i", str(image), "-o", str(tmp_path / "translated"), check=True)
    served = read_rgb(base64.b64decode(predictions[0]["image"]))
    assert (served == read_rgb(tmp_path / "translated" / "input.png")).all()
