"""benchmarks/gpu.py --dry-run: every check of the GPU run, on the CPU at toy sizes, into one JSON file and a table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

STEP_SETTINGS = [f"{amp}{layout}" for amp in ("fp32", "bf16", "fp16") for layout in ("", "+channels_last")]
COMPILED = [f"{amp}+channels_last+compile" for amp in ("fp32", "bf16", "fp16")]


def test_dry_run_runs_every_check_and_writes_the_json(tmp_path, repo_root):
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    command = [sys.executable, "benchmarks/gpu.py", "--dry-run", "--out", str(tmp_path)]
    finished = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    (path,) = tmp_path.glob("gpu-*-dry-run.json")
    summary = json.loads(path.read_text())
    checks = summary["checks"]
    assert list(checks) == [*STEP_SETTINGS, "reference", "train_b16", "evaluate", "ddp", "pytest_cuda", *COMPILED]
    for name in STEP_SETTINGS:
        assert checks[name]["ok"] is True and math.isfinite(checks[name]["g_l1"]) and checks[name]["img_s"] > 0, (name, checks[name])
        assert abs(checks[name]["g_l1_vs_fp32"]) <= summary["meta"]["loss_tolerance"]
        assert checks[name]["peak_memory_mb"] is None  # the CPU: no GPU memory to report
    assert all(checks[name]["ok"] is None and "compile" in checks[name]["skipped"] for name in COMPILED)
    assert checks["reference"] == {"ok": None, "skipped": "no --reference DIR", "wall_s": checks["reference"]["wall_s"]}
    assert checks["train_b16"]["ok"] and checks["train_b16"]["batch"] == 16 and 0 <= checks["train_b16"]["data_wait_share"] <= 1
    assert any(line.startswith("data wait at batch 16: ") for line in summary["verdicts"])
    assert checks["evaluate"]["ok"] and checks["evaluate"]["images"] == summary["meta"]["plan"]["train_images"]
    ddp = checks["ddp"]
    assert ddp["ok"] and ddp["world_size"] == 1 and ddp["steps"] == summary["meta"]["plan"]["train_steps"]
    assert checks["pytest_cuda"]["ok"] and checks["pytest_cuda"]["tests"]["skipped"] > 0 and "passed" not in checks["pytest_cuda"]["tests"]
    assert summary["meta"]["dry_run"] and summary["meta"]["multi_gpu_scaling"].startswith("unmeasured")
    assert summary["verdicts"][0].startswith("all settings trained: yes")
    assert "DDP: torchrun --nproc_per_node 1 trained over gloo; multi-GPU scaling is unmeasured (one GPU)" in summary["verdicts"]
    for name in checks:
        assert any(line.startswith(name + " ") for line in finished.stdout.splitlines()), name  # a table row each
    assert f"wrote {path}" in finished.stdout
