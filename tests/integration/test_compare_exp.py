"""`pix2pix compare --exp`: DVC experiments compared straight from the local cache, without `dvc exp apply`.

A temporary git + DVC repository whose one stage copies a prepared results folder (and training samples)
into results/x and models/x, the variant picked by a param: two `dvc exp run -S` give two experiments.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.compare import make_run, page_data

VENV_BIN = Path(sys.executable).parent
PIPELINE = """\
stages:
  evaluate:
    cmd: mkdir -p results models/x && cp -r variants/${variant}/results results/x && cp -r variants/${variant}/samples models/x/samples
    deps: [variants]
    params: [variant]
    outs: [results/x, models/x]
"""
VARIANTS = {"a": {"l1": 0.3, "output_seed": 100, "samples": {2: 10, 4: 120}}, "b": {"l1": 0.1, "output_seed": 300, "samples": {4: 60}}}


def run(repo: Path, *args: str) -> str:
    """A git or dvc command in ``repo`` (tools of the virtual environment first on PATH); it must succeed."""
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env = {**os.environ, **identity, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory, random_png) -> Path:
    """The repository, with the DVC experiments alpha (variant a) and beta (variant b) run from its commit."""
    repo = tmp_path_factory.mktemp("exp") / "repo"
    for variant, spec in VARIANTS.items():
        make_run(repo / "variants" / variant / "results", random_png, l1=spec["l1"], output_seed=spec["output_seed"])
        (repo / "variants" / variant / "samples").mkdir()
        for step, level in spec["samples"].items():
            Image.fromarray(np.full((8, 24, 3), level, np.uint8)).save(repo / "variants" / variant / "samples" / f"step_{step:07d}.png")
    (repo / "dvc.yaml").write_text(PIPELINE)
    (repo / "params.yaml").write_text("variant: a\n")
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "dvc", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "pipeline")
    for name, variant in (("alpha", "a"), ("beta", "b")):
        run(repo, "dvc", "exp", "run", "-q", "-n", name, "-S", f"variant={variant}")
    return repo


def test_experiments_are_columns_named_after_them_beside_a_results_folder(repo, tmp_path, random_png, run_cli):
    local = make_run(tmp_path / "local", random_png, l1=0.2, output_seed=500)
    page = tmp_path / "page.html"
    compared = run_cli("stages.compare", "--exp", "alpha:x", "--exp", "beta", "--run", str(local), "--sort-by", "l1", "-o", str(page), cwd=repo, check=True)
    assert compared.stdout.strip() == f"3 runs -> {page}"
    html = page.read_text()
    assert "<b>alpha</b> <code>DVC experiment alpha: results/x</code>" in html and "<b>beta</b> <code>DVC experiment beta: results/x</code>" in html
    data = page_data(html)
    # runs: local (--run comes first), alpha, beta; one table, l1 lowest first: beta 0.1, local 0.2, alpha 0.3
    assert len(data["groups"]) == 1 and data["groups"][0]["orders"]["l1"] == [2, 0, 1]
    assert data["groups"][0]["values"]["1"]["l1"][0] == pytest.approx(0.3) and data["groups"][0]["values"]["2"]["l1"][0] == pytest.approx(0.1)
    for index, seed in ((1, 100), (2, 300)):  # each experiment's own outputs, not the workspace's (beta's)
        assert (tmp_path / "page_files" / f"run{index}" / "img1-outputs.png").read_bytes() == random_png(32, 32, seed + 1)
    assert data["steps"] == [2, 4] and [step for step, _ in data["frames"][1]] == [2, 4] and [step for step, _ in data["frames"][2]] == [4]
    assert data["frames"][0] == []  # the results folder came without training samples
    assert run(repo, "git", "status", "--porcelain", "--untracked-files=no") == " M params.yaml\n"  # as `dvc exp run` left it


def test_bad_experiments_are_one_line_naming_them(repo, tmp_path, run_cli, assert_user_error):
    page = str(tmp_path / "page.html")
    assert_user_error(run_cli("stages.compare", "--exp", "nope:x", "-o", page, cwd=repo), "--exp nope:x", "'nope'", "alpha, beta")
    assert_user_error(run_cli("stages.compare", "--exp", "alpha:z", "-o", page, cwd=repo), "--exp alpha:z", "no results/z", "it has: x")
    assert_user_error(run_cli("stages.compare", "--exp", "alpha", "--exp", "alpha", "-o", page, cwd=repo), "'alpha' is taken")
    run(repo, "dvc", "gc", "--workspace", "--force")  # the workspace holds beta's outputs: alpha's leave the cache
    assert_user_error(run_cli("stages.compare", "--exp", "alpha:x", "-o", page, cwd=repo), "--exp alpha:x", "not in the local DVC cache", "dvc exp pull")
    assert not Path(page).exists()
    run_cli("stages.compare", "--exp", "beta:x", "-o", page, cwd=repo, check=True)
