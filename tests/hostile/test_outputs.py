"""Hostile outputs (issue 22): outputs that would delete inputs, runs or a user's files, awkward
file names, and stages killed mid-way. One test per case."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from pix2pix.data.images import list_images
from pix2pix.files import OUTPUT_MARKER, atomic_directory, remove_stale_staging
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages import combine, download, evaluate, report, resize, split, translate

CAFE = os.fsdecode(b"caf\xe9")  # not UTF-8: Python keeps the byte as the surrogate \udce9


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_pairs, tiny_config) -> Path:
    """A tiny trained run folder (checkpoint.pt, generator.pt, options.json ...)."""
    root = tmp_path_factory.mktemp("run")
    folder = root / "run0"
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), folder)
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def staging_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def photos(folder: Path, count: int, size: int = 32) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (size, size), (index * 40 % 256, 90, 200)).save(folder / f"{index}.png")
    return folder


# --- 1. outputs never delete inputs, runs, files or a user's folder ------------------------------


def test_evaluate_into_its_own_input_folder_is_refused(run, make_pairs, tmp_path, invoke, assert_user_error):
    pairs = make_pairs(tmp_path / "v", count=2)
    before = contents(pairs)
    assert_user_error(invoke(evaluate.app, "-i", str(pairs), "-c", str(run), "-o", str(pairs)), "must not be or contain the input folder")
    assert contents(pairs) == before


def test_evaluate_into_the_run_folder_is_refused(run, make_pairs, tmp_path, invoke, assert_user_error):
    before = contents(run)
    pairs = make_pairs(tmp_path / "v", count=2)
    assert_user_error(invoke(evaluate.app, "-i", str(pairs), "-c", str(run), "-o", str(run)), str(run))
    assert_user_error(invoke(evaluate.app, "-i", str(pairs), "-c", str(run / "generator.pt"), "-o", str(run)), str(run))
    assert contents(run) == before and {"checkpoint.pt", "generator.pt"} <= set(before)


def test_evaluate_into_the_inputs_parent_is_refused(run, make_pairs, tmp_path, invoke, assert_user_error):
    pairs = make_pairs(tmp_path / "data" / "v", count=2)
    before = contents(tmp_path / "data")
    assert_user_error(invoke(evaluate.app, "-i", str(pairs), "-c", str(run), "-o", str(tmp_path / "data")), "must not be or contain")
    assert contents(tmp_path / "data") == before


def test_evaluate_onto_an_existing_file_is_refused(run, make_pairs, tmp_path, invoke, assert_user_error):
    pairs = make_pairs(tmp_path / "v", count=2)
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke(evaluate.app, "-i", str(pairs), "-c", str(run), "-o", str(tmp_path / "notes.txt"))
    assert_user_error(result, f"{tmp_path / 'notes.txt'} exists and is not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resize_onto_an_existing_file_is_refused(tmp_path, invoke, assert_user_error):
    photos(tmp_path / "in", 2)
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke(resize.app, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "notes.txt"), "--size", "8", "--workers", "1")
    assert_user_error(result, "notes.txt exists and is not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def stage_commands(tmp_path: Path, run: Path, make_pairs) -> dict[str, tuple]:
    """Every stage that writes a folder, as (app, arguments before --output-dir); inputs made here."""
    photos(tmp_path / "in", 2)
    photos(tmp_path / "b", 2)
    pairs = make_pairs(tmp_path / "pairs", count=2)
    eval_dir = tmp_path / "results"
    images = eval_dir / "images"
    images.mkdir(parents=True)
    for kind in ("inputs", "outputs", "targets"):
        shutil.copy(tmp_path / "in" / "0.png", images / f"0-{kind}.png")
    (eval_dir / "metrics.csv").write_text("name,l1\n0,0.5\n")
    (eval_dir / "metrics.json").write_text('{"l1": 0.5}')
    return {
        "resize": (resize.app, "-i", str(tmp_path / "in"), "--size", "8", "--workers", "1"),
        "combine": (combine.app, "-a", str(tmp_path / "in"), "-b", str(tmp_path / "b"), "--workers", "1"),
        "split": (split.app, "-i", str(tmp_path / "in")),
        "evaluate": (evaluate.app, "-i", str(pairs), "-c", str(run)),
        "translate": (translate.app, "-i", str(tmp_path / "in"), "-c", str(run)),
        "report": (report.app, "--eval-dir", str(eval_dir)),
    }


@pytest.mark.parametrize("stage", ["resize", "combine", "split", "evaluate", "translate", "report"])
def test_a_users_folder_is_never_replaced_but_a_pix2pix_output_is(stage, run, make_pairs, tmp_path, invoke, assert_user_error):
    app, *arguments = stage_commands(tmp_path, run, make_pairs)[stage]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert_user_error(invoke(app, *arguments, "--output-dir", str(mine)), f"{mine} exists and was not written by pix2pix; delete it or choose another --output_dir")
    assert contents(mine) == {"thesis.tex": b"years of work"}
    (tmp_path / "empty").mkdir()
    for output in ("empty", "new", "new"):  # an empty folder, a new one, then again over its own output
        result = invoke(app, *arguments, "--output-dir", str(tmp_path / output))
        assert result.returncode == 0, result.stderr
        assert (tmp_path / output / OUTPUT_MARKER).is_file()
    assert not staging_left(tmp_path)


def test_download_of_a_folder_source_never_replaces_a_users_folder(tmp_path, invoke, assert_user_error):
    photos(tmp_path / "source", 2)
    (tmp_path / "raw" / "photos").mkdir(parents=True)
    (tmp_path / "raw" / "photos" / "mine.png").write_bytes(b"mine")
    result = invoke(download.app, "photos", "--source", str(tmp_path / "source"), "-o", str(tmp_path / "raw"))
    assert_user_error(result, f"{tmp_path / 'raw' / 'photos'} exists and was not written by pix2pix")
    assert contents(tmp_path / "raw" / "photos") == {"mine.png": b"mine"}


def test_the_marker_is_identical_everywhere_and_never_taken_for_data(run, make_pairs, tmp_path, invoke):
    pairs = make_pairs(tmp_path / "pairs", count=2)
    for app, *arguments, output in (
        (resize.app, "-i", str(pairs), "--size", "16", "--workers", "1", "-o", tmp_path / "resized"),
        (evaluate.app, "-i", str(pairs), "-c", str(run), "-o", tmp_path / "results"),
        (report.app, "--eval-dir", str(tmp_path / "results"), "-o", tmp_path / "report"),
    ):
        result = invoke(app, *arguments, str(output))
        assert result.returncode == 0, result.stderr
    markers = {(tmp_path / name / OUTPUT_MARKER).read_bytes() for name in ("resized", "results", "report")}
    assert len(markers) == 1 and str(tmp_path).encode() not in markers.pop()  # fixed bytes: DVC sees the same output
    assert [p.name for p in list_images(tmp_path / "resized")] == ["0.png", "1.png"]
    evaluated = invoke(evaluate.app, "-i", str(tmp_path / "resized"), "-c", str(run), "-o", str(tmp_path / "resized-results"))
    assert evaluated.returncode == 0, evaluated.stderr
    with (tmp_path / "resized-results" / "metrics.csv").open() as handle:
        assert [row["name"] for row in csv.DictReader(handle)] == ["0", "1"]


# --- 2. names -------------------------------------------------------------------------------------


def test_a_non_utf8_name_is_evaluated_and_reported_as_escaped_text(run, make_pairs, tmp_path, invoke):
    pairs = make_pairs(tmp_path / "v", count=2)
    (pairs / "1.png").rename(pairs / f"{CAFE}.png")
    result = invoke(evaluate.app, "-i", str(pairs), "-c", str(run), "-o", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "results" / "metrics.csv").read_bytes().decode("utf-8")  # valid UTF-8
    assert [line.split(",")[0] for line in table.splitlines()] == ["name", "0", "caf\\xe9"]
    assert (tmp_path / "results" / "images" / "caf\\xe9-outputs.png").is_file()
    result = invoke(report.app, "--eval-dir", str(tmp_path / "results"), "-o", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "caf\\\\xe9" in (tmp_path / "report" / "index.html").read_bytes().decode("utf-8")  # JSON-escaped in the page


def test_a_bad_image_with_a_non_utf8_name_is_named_in_the_error(run, make_pairs, tmp_path, run_cli, assert_user_error):
    pairs = make_pairs(tmp_path / "v", count=1)
    (pairs / f"{CAFE}.png").write_bytes(b"not an image")
    result = run_cli("stages.evaluate", "-i", str(pairs), "-c", str(run), "-o", str(tmp_path / "results"))
    assert_user_error(result, str(pairs / "caf\\udce9.png"))
    assert not (tmp_path / "results").exists() and not staging_left(tmp_path)


def test_evaluate_refuses_two_images_with_one_name_before_loading_the_model(make_pairs, tmp_path, invoke, assert_user_error):
    pairs = make_pairs(tmp_path / "v", count=1)
    Image.open(pairs / "0.png").save(pairs / "0.jpg")
    result = invoke(evaluate.app, "-i", str(pairs), "-c", str(tmp_path / "no-such-run"), "-o", str(tmp_path / "results"))
    assert_user_error(result, f"{pairs / '0.jpg'} and {pairs / '0.png'}: both would be written as images/0-*.png")
    assert not (tmp_path / "results").exists()


# --- 3. killed stages leave no workers and no staging folders -------------------------------------


@pytest.fixture
def big_photos(tmp_path) -> Path:
    """400 smooth 1024 px PNGs (one file, copied): a few seconds of decoding for two workers."""
    ramp = np.linspace(0, 255, 1024).astype(np.uint8)
    image = np.dstack([np.tile(ramp, (1024, 1)), np.tile(ramp[:, None], (1, 1024)), np.full((1024, 1024), 128, np.uint8)])
    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(image).save(folder / "0.png")
    data = (folder / "0.png").read_bytes()
    for index in range(1, 400):
        (folder / f"{index}.png").write_bytes(data)
    return folder


ROOT = Path(__file__).resolve().parents[2]


def start_stage(log: Path, *args: str) -> subprocess.Popen:
    """``python -m STAGE ARGS`` in the background, its output going to the file ``log``."""
    with log.open("w") as output:
        return subprocess.Popen([sys.executable, "-m", *args], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=output, stderr=subprocess.STDOUT)


def wait_until(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def staged_files(parent: Path, name: str) -> int:
    """Files written so far into the staging folders of output ``name``."""
    return sum(len(list(p.iterdir())) for p in parent.glob(f".{name}.*.tmp"))


def all_gone(processes: list[psutil.Process], timeout: float = 10.0) -> bool:
    """Whether every process ends (exits, or is a zombie waiting for PID 1) within ``timeout`` seconds."""

    def gone(process: psutil.Process) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + timeout
    while not all(map(gone, processes)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def resize_workers_mid_way(tmp_path: Path, big_photos: Path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """``pix2pix resize --workers 2`` started, with its two workers, once it has written some images."""
    stage = start_stage(tmp_path / "log.txt", "stages.resize", "-i", str(big_photos), "-o", str(tmp_path / "out"), "--size", "32", "--workers", "2")
    wait_until(lambda: stage.poll() is not None or staged_files(tmp_path, "out") > 0, what="the first resized images")
    workers = psutil.Process(stage.pid).children()
    assert stage.poll() is None and len(workers) == 2, "resize finished (or failed) before it could be killed"
    return stage, workers


def test_sigkilled_resize_leaves_no_workers_and_the_next_run_removes_its_staging(tmp_path, big_photos, run_cli):
    stage, workers = resize_workers_mid_way(tmp_path, big_photos)
    stage.kill()
    stage.wait()
    assert all_gone(workers), [worker.pid for worker in workers]
    assert staging_left(tmp_path)  # killed outright: nothing could clean up
    result = run_cli("stages.resize", "-i", str(photos(tmp_path / "small", 1)), "-o", str(tmp_path / "out"), "--size", "8")
    assert result.returncode == 0, result.stderr
    assert not staging_left(tmp_path)


def test_sigterm_resize_stops_its_workers_and_removes_its_staging(tmp_path, big_photos):
    stage, workers = resize_workers_mid_way(tmp_path, big_photos)
    stage.terminate()
    assert stage.wait(timeout=60) == 128 + signal.SIGTERM, (tmp_path / "log.txt").read_text()
    assert all_gone(workers)
    assert not staging_left(tmp_path) and not (tmp_path / "out").exists()


def test_sigterm_evaluate_removes_its_staging(run, make_pairs, tmp_path):
    pairs = make_pairs(tmp_path / "v", count=300, size=64)
    stage = start_stage(tmp_path / "log.txt", "stages.evaluate", "-i", str(pairs), "-c", str(run), "-o", str(tmp_path / "results"))
    wait_until(
        lambda: stage.poll() is not None or any(p.glob("images/*.png") for p in tmp_path.glob(".results.*.tmp")),
        what="the first evaluated images",
    )
    stage.terminate()
    assert stage.wait(timeout=60) == 128 + signal.SIGTERM, (tmp_path / "log.txt").read_text()
    assert not staging_left(tmp_path) and not (tmp_path / "results").exists()


def test_only_staging_folders_of_ended_processes_are_removed(tmp_path):
    script = "from pix2pix.files import _staging_folder; import sys; from pathlib import Path; _staging_folder(Path(sys.argv[1]), '.tmp')"
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    (tmp_path / ".out.otherhost+1+1+abcdefgh.tmp").mkdir()  # another machine's run: its PID means nothing here
    (tmp_path / ".out.handmade.tmp").mkdir()  # no owner in the name: not ours to judge
    with atomic_directory(tmp_path / "out") as staging:
        remove_stale_staging(tmp_path / "out")  # what a second run would do while this one is still staging
        assert staging.is_dir()
        (staging / "x.txt").write_text("done")
    assert staging_left(tmp_path) == [".out.handmade.tmp", ".out.otherhost+1+1+abcdefgh.tmp"]
    assert (tmp_path / "out" / "x.txt").read_text() == "done"
