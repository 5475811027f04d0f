"""Stages that start at once on a repository without mlflow.db (`dvc queue start -j 2`) would both create
the store's tables, and one fail: each creates it holding a lock on the repository's folder."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def waits_for_lock(pid: int) -> bool:
    """Whether ``pid`` is blocked on a flock (a "->" line of /proc/locks)."""
    return any(line.split()[1:3] == ["->", "FLOCK"] and line.split()[5] == str(pid) for line in Path("/proc/locks").read_text().splitlines())


def test_the_store_is_created_under_the_repositorys_lock(tmp_path):
    (tmp_path / ".git").mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    folder = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(folder, fcntl.LOCK_EX)  # another stage is creating the store
    try:
        stage = subprocess.Popen(
            [sys.executable, "-c", "from stages.tracking import connect; connect()"], cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        while not waits_for_lock(stage.pid):
            assert stage.poll() is None, f"it did not wait for the lock: {stage.stdout.read()}"
            time.sleep(0.05)
        assert not (tmp_path / "mlflow.db").exists()
    finally:
        os.close(folder)
    output, _ = stage.communicate(timeout=120)
    assert stage.returncode == 0, output
    assert (tmp_path / "mlflow.db").stat().st_size > 0
