"""`pix2pix compare`: the page's columns, tables and escaping, its one-line errors, and the training samples it replays.

The page in headless Chromium (sorting, sliders, lazy images): tests/integration/test_compare_browser.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pix2pix.apps.compare import build_comparison, read_run
from tests.support.compare import make_run, page_data


def header_columns(html: str, group: int = 0) -> list[str]:
    """The data-col keys of a table's header, in page order."""
    section = html.split(f'id="group-{group}"')[1].split("</thead>")[0]
    return re.findall(r'<th data-col="([^"]+)"', section)


@pytest.fixture
def three_runs(tmp_path, random_png):
    """Runs on the same inputs, l1 (lower is better) 0.3, 0.1, 0.2 and psnr (higher is better) 20, 25, 30."""
    return [
        read_run(name, make_run(tmp_path / name, random_png, l1=l1, psnr=psnr))
        for name, l1, psnr in (("a", 0.3, 20.0), ("b", 0.1, 25.0), ("c", 0.2, 30.0))
    ]


def test_columns_are_the_runs_ordered_by_a_metric_in_its_direction_then_target_and_baseline(tmp_path, three_runs):
    page = tmp_path / "out" / "compare.html"
    build_comparison(three_runs, page, sort_by="l1")
    html = page.read_text()
    assert header_columns(html) == ["1", "2", "0", "target", "input"]  # l1: lowest first
    orders = page_data(html)["groups"][0]["orders"]
    assert orders == {"l1": [1, 2, 0], "psnr": [2, 1, 0]}  # psnr: highest first
    build_comparison(three_runs, page)
    assert header_columns(page.read_text()) == ["0", "1", "2", "target", "input"]  # as given
    assert "identity baseline" in html and "↓ lower is better" in html and "↑ higher is better" in html
    assert 'src="compare_files/run1/img0-outputs.png"' in html and 'src="compare_files/group0/img0-targets.png"' in html
    assert html.count('loading="lazy"') == 3 * 5  # 3 rows of 3 runs, target and input
    assert (tmp_path / "out" / "compare_files" / "run1" / "img0-outputs.png").read_bytes() == (tmp_path / "b" / "images" / "img0-outputs.png").read_bytes()


def test_runs_on_other_inputs_get_their_own_table(tmp_path, random_png):
    same = [read_run(name, make_run(tmp_path / name, random_png)) for name in ("a", "b")]
    other_bytes = read_run("c", make_run(tmp_path / "c", random_png, input_seed=7))
    other_names = read_run("d", make_run(tmp_path / "d", random_png, names=("x", "y")))
    page = tmp_path / "compare.html"
    build_comparison([same[0], other_bytes, same[1], other_names], page)
    html = page.read_text()
    assert html.count('<section class="group"') == 3
    assert header_columns(html, 0) == ["0", "2", "target", "input"]
    assert header_columns(html, 1) == ["1", "target", "input"]
    assert header_columns(html, 2) == ["3", "target", "input"]
    assert page_data(html)["groups"][2]["members"] == [3]


def test_hostile_names_are_escaped(tmp_path, random_png, hostile, csp):
    run = read_run(hostile.name, make_run(tmp_path / "run", random_png, names=(hostile.name, "img1")))
    page = tmp_path / "compare.html"
    build_comparison([run], page, title=hostile.title)
    html = page.read_text()
    assert hostile.name not in html and hostile.title not in html and "<img src=x" not in html
    assert "&lt;!--&lt;img src=x onerror=" in html  # shown as text
    assert page_data(html)["groups"][0]["values"]["0"]["l1"]  # the JSON blob still parses
    assert "%3C%21--%3Cimg%20src%3Dx%20onerror%3D" in html  # the image link, quoted
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    directives = csp.directives(policy.replace("&#39;", "'"))
    assert directives["default-src"] == ["'none'"] and directives["script-src"] == [csp.sha256_source(s) for s in csp.inline_scripts(html)]
    assert "http" not in directives["img-src"][0] and "<script src" not in html and "<link" not in html


def test_bad_runs_are_one_line_naming_them(tmp_path, random_png, run_cli, assert_user_error):
    good = make_run(tmp_path / "good", random_png)
    page = str(tmp_path / "out" / "compare.html")
    missing = tmp_path / "missing"
    assert_user_error(run_cli("stages.compare", "--run", str(missing), "-o", page), str(missing), "results folder not found")
    no_json = make_run(tmp_path / "no_json", random_png)
    (no_json / "metrics.json").unlink()
    assert_user_error(run_cli("stages.compare", "--run", str(good), "--run", str(no_json), "-o", page), str(no_json / "metrics.json"), "not found")
    no_image = make_run(tmp_path / "no_image", random_png)
    (no_image / "images" / "img1-outputs.png").unlink()
    assert_user_error(run_cli("stages.compare", "--run", str(no_image), "-o", page), "img1-outputs.png", "missing")
    assert_user_error(run_cli("stages.compare", "--run", f"x={good}", "--samples", f"y={tmp_path}", "-o", page), "--samples y=", "no --run is named 'y'")
    assert_user_error(run_cli("stages.compare", "--run", f"x={good}", "--run", f"x={good}", "-o", page), "'x' is given twice")
    assert_user_error(run_cli("stages.compare", "--run", str(good), "--sort-by", "fid", "-o", page), "--sort-by 'fid'", "l1, psnr")
    inside = make_run(tmp_path / "page_files" / "run", random_png)  # page.html's image folder would replace it
    assert_user_error(run_cli("stages.compare", "--run", str(inside), "-o", str(tmp_path / "page.html")), "page_files", "must not be or contain")
    assert not (tmp_path / "out").exists() and not (tmp_path / "page.html").exists() and (inside / "metrics.json").is_file()
    assert run_cli("stages.cli", "compare", "--run", str(good), "-o", page, check=True).stdout.strip() == f"1 runs -> {page}"


def test_train_keeps_sample_grids_in_its_run_folder_across_a_resume(tmp_path, pairs, tiny_args, run_cli, random_png):
    def train(folder: Path, steps: int) -> list[str]:
        run_cli("stages.train", "-i", str(pairs), "-o", str(folder), *tiny_args, "--max_steps", str(steps), "--sample_freq", "2", check=True)
        return sorted(path.name for path in (folder / "samples").iterdir())

    assert train(tmp_path / "whole", 6) == ["step_0000002.png", "step_0000004.png", "step_0000006.png"]
    assert train(tmp_path / "resumed", 4) == ["step_0000002.png", "step_0000004.png"]
    (tmp_path / "resumed" / "samples" / "step_0000005.png").write_bytes(b"lost work: after the checkpoint")
    assert train(tmp_path / "resumed", 6) == ["step_0000002.png", "step_0000004.png", "step_0000006.png"]
    for name in ("step_0000002.png", "step_0000004.png", "step_0000006.png"):  # deterministic, and the same resumed
        assert (tmp_path / "whole" / "samples" / name).read_bytes() == (tmp_path / "resumed" / "samples" / name).read_bytes()
    run = read_run("resumed", make_run(tmp_path / "results", random_png), tmp_path / "resumed")
    page = tmp_path / "compare.html"
    build_comparison([run], page)
    data = page_data(page.read_text())
    assert data["steps"] == [2, 4, 6] and data["frames"][0][0] == [2, "compare_files/run0/samples/step_0000002.png"]
    assert (tmp_path / "compare_files" / "run0" / "samples" / "step_0000006.png").is_file()


def test_an_evaluation_logged_to_mlflow_is_compared_by_its_run_id(tmp_path, random_png, monkeypatch, run_cli, assert_user_error):
    from pix2pix.infer.summary import read_summary
    from stages.tracking import MARKER, RUN_DIR_TAG, connect, evaluation_metrics, latest_run, log_evaluation, run_tags

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)  # the store's default artifact folder, ./mlruns
    results, run_dir = make_run(tmp_path / "results", random_png, l1=0.1), tmp_path / "run"
    run_dir.mkdir()
    (run_dir / MARKER).write_text(json.dumps({"experiment": "facades"}))
    assert log_evaluation(run_dir, read_summary(results), results, {"evaluate": {"eval_mode": "train"}})
    run = latest_run(connect(), "facades", run_tags(run_dir))
    run_id = run.info.run_id
    assert run.data.metrics == evaluation_metrics(read_summary(results)) == {"eval_l1": 0.1, "eval_psnr": 20.0, "baseline_identity_l1": 0.5, "baseline_identity_psnr": 10.0}
    assert run.data.params == {"evaluate.eval_mode": "train"}
    local = make_run(tmp_path / "local", random_png, l1=0.3)
    page = tmp_path / "compare.html"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    run_cli("stages.compare", "--run", str(local), "--mlflow-run", run_id, "--sort-by", "l1", "-o", str(page), env=env, check=True)
    html = page.read_text()
    assert header_columns(html) == ["1", "0", "target", "input"]  # the MLflow run's l1 is the lower
    assert f"<b>{Path(run_tags(run_dir)[RUN_DIR_TAG]).name}</b> <code>MLflow run {run_id}</code>" in html  # named after the run
    assert (tmp_path / "compare_files" / "run1" / "img2-outputs.png").read_bytes() == (results / "images" / "img2-outputs.png").read_bytes()
    assert page_data(html)["frames"] == [[], []] and page_data(html)["steps"] == []  # it logged no samples: no slider
    assert_user_error(run_cli("stages.compare", "--mlflow-run", "0123abc", "-o", str(page), env=env), "--mlflow-run 0123abc")


def test_an_mlflow_runs_many_sample_grids_come_in_one_download(tmp_path, random_png, monkeypatch):
    """The tracker logs each grid as a file of its own (a cgan run folder keeps none of samples/step_*.png); compare
    fetches the folder of them, not a grid at a time."""
    import numpy as np
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from pix2pix.data.images import encode_image, save_image
    from pix2pix.infer.summary import read_summary
    from stages.tracking import TrainingTracker, download_run, log_evaluation

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the store's default artifact folder, ./mlruns
    results, run_dir = make_run(tmp_path / "results", random_png), tmp_path / "run"
    grids = {step: np.random.default_rng(step).integers(0, 256, (8, 8, 3), dtype=np.uint8) for step in range(1, 101)}
    tracker = TrainingTracker("facades", run_dir, {})
    for step, grid in grids.items():
        kept = tmp_path / "kept" / f"step_{step:07d}.png"  # the run folder's file, as the training loop hands it over
        save_image(grid, kept)
        tracker.on_sample(step, grid, kept)
    tracker.finish(None)
    log_evaluation(run_dir, read_summary(results), results, {})  # into the training's run
    downloads = []
    download = LocalArtifactRepository.download_artifacts
    monkeypatch.setattr(LocalArtifactRepository, "download_artifacts", lambda self, path, dst=None: downloads.append(path) or download(self, path, dst))
    _, _, training_dir = download_run(tracker.run_id(), tmp_path / "downloaded")
    assert downloads == ["evaluation", "samples"]  # a folder each, not a file each
    run = read_run("run", results, training_dir)
    assert [step for step, _ in run.samples] == list(range(1, 101))
    assert run.samples[99][1].read_bytes() == encode_image(grids[100], "PNG")  # what a run folder keeps


def test_a_tracked_trainings_samples_replay_in_its_mlflow_runs_column(tmp_path, pairs, tiny_args, run_cli):
    import mlflow

    from pix2pix.train.loop import sample_path

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    run_dir, page = tmp_path / "models" / "m", tmp_path / "compare.html"
    train = ["stages.train", "-i", str(pairs), "-o", str(run_dir), *tiny_args, "--max_steps", "4", "--sample_freq", "2", "--mlflow-experiment", "facades"]
    run_cli(*train, cwd=tmp_path, env=env, check=True)
    run_cli("stages.evaluate", "-i", str(pairs), "-c", str(run_dir), "-o", str(tmp_path / "results"), cwd=tmp_path, env=env, check=True)
    client = mlflow.MlflowClient(store)
    [run] = client.search_runs([client.get_experiment_by_name("facades").experiment_id])  # training's, evaluated
    run_cli("stages.compare", "--mlflow-run", run.info.run_id, "-o", str(page), cwd=tmp_path, env=env, check=True)
    data = page_data(page.read_text())
    assert data["steps"] == [2, 4] and data["frames"] == [[[2, "compare_files/run0/samples/step_0000002.png"], [4, "compare_files/run0/samples/step_0000004.png"]]]
    assert (tmp_path / "compare_files" / "run0" / "samples" / "step_0000004.png").read_bytes() == sample_path(run_dir, 4).read_bytes()
