"""Hostile disks (issue 22): a file system that fills up under a stage, and file names that are not
UTF-8. A full disk is one line naming the path and the OS's reason, never a traceback or a SIGBUS,
and leaves no staging behind and every earlier result intact. One test per case.

The full disk is a real one: a small tmpfs mounted for the test (needs root and mount permission;
the tests skip, saying so, where the container forbids it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages import evaluate, export, report, split, translate
from stages import train as train_stage
from stages.download import app as download_app
from tests.support.archives import zip_of_zeros

FULL = "No space left on device"  # strerror(ENOSPC)
DISK_SIZE = "16m"  # room for a tiny run's checkpoint.pt (3.7 MB) and generator.pt


@pytest.fixture
def disk(tmp_path) -> Path:
    """An empty tmpfs of ``DISK_SIZE`` of its own, unmounted after the test."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(folder)], check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root and mount permission): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Take all of the disk's free space but ``leave`` bytes, with one file named ``filler``."""
    stat = os.statvfs(disk)
    with open(disk / "filler", "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, stat.f_bavail * stat.f_frsize - leave)


def noise_photos(folder: Path, count: int, size: int = 32) -> Path:
    """Photos of random pixels: their PNGs do not compress, so each takes a few kB of disk."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(folder / f"{index}.png")
    return folder


@pytest.fixture
def train_args(tiny_args):
    def train_args(data: Path, out: Path, *extra: str) -> list[str]:
        return ["stages.train", "--input_dir", str(data), "--output_dir", str(out), *tiny_args, "--seed", "1", *extra]

    return train_args


# --- 1. a full disk -------------------------------------------------------------------------------


def test_resize_with_two_workers_onto_a_full_disk_is_one_line(disk, tmp_path, run_cli, assert_user_error):
    photos = noise_photos(tmp_path / "photos", count=8)
    fill(disk)
    result = run_cli("stages.resize", "-i", str(photos), "-o", str(disk / "resized"), "--size", "32", "--workers", "2")
    assert_user_error(result, f"{disk / 'resized'}: {FULL}")
    assert "RemoteTraceback" not in result.stderr
    assert sorted(os.listdir(disk)) == ["filler"]  # no staging folder left


def test_split_onto_a_full_disk_is_one_line(disk, tmp_path, invoke, assert_user_error):
    photos = noise_photos(tmp_path / "photos", count=8)
    fill(disk)
    result = invoke(split.app, "-i", str(photos), "-o", str(disk / "split"))
    assert_user_error(result, str(disk), FULL)
    assert sorted(os.listdir(disk)) == ["filler"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_pairs, tiny_config) -> Path:
    """A tiny trained run folder."""
    root = tmp_path_factory.mktemp("run")
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), root / "run")
    return root / "run"


def test_evaluate_onto_a_full_disk_is_one_line(disk, run, make_pairs, tmp_path, invoke, assert_user_error):
    pairs = make_pairs(tmp_path / "pairs", count=2)
    fill(disk)
    result = invoke(evaluate.app, "-i", str(pairs), "-c", str(run), "-o", str(disk / "results"))
    assert_user_error(result, str(disk), FULL)
    assert sorted(os.listdir(disk)) == ["filler"]


def test_translate_export_and_report_onto_a_full_disk_are_one_line(disk, run, make_pairs, tmp_path, invoke, assert_user_error):
    """The other writers: translate (file by file), export (one file) and report (a folder)."""
    photos = noise_photos(tmp_path / "photos", count=2)
    results = tmp_path / "results"
    assert invoke(evaluate.app, "-i", str(make_pairs(tmp_path / "pairs", count=2)), "-c", str(run), "-o", str(results)).returncode == 0
    fill(disk, leave=4096)  # room for translate's marker file, not for an image
    translated = invoke(translate.app, "-c", str(run), "-i", str(photos), "-o", str(disk / "translated"))
    assert_user_error(translated, str(disk / "translated"), FULL)
    exported = invoke(export.app, "-c", str(run), "--format", "torchscript", "-o", str(disk / "generator.ts"))
    assert_user_error(exported, str(disk / "generator.ts"), FULL)
    reported = invoke(report.app, "--eval_dir", str(results), "-o", str(disk / "report"))
    assert_user_error(reported, str(disk / "report"), FULL)
    leftovers = {path.relative_to(disk).as_posix() for path in disk.rglob("*")}
    assert leftovers <= {"filler", "translated", "translated/.pix2pix-output"}  # no temp file, no staging, no half an image


def test_training_onto_a_full_disk_is_one_line(disk, pairs, run_cli, train_args, assert_user_error):
    fill(disk)
    result = run_cli(*train_args(pairs, disk / "run", "--max_steps", "1"))
    assert_user_error(result, str(disk / "run"), FULL)
    assert sorted(os.listdir(disk)) == ["filler"]  # the run folder it made, empty, removed


def test_training_cache_on_a_full_disk_is_one_line_not_a_sigbus(disk, pairs, tmp_path, run_cli, train_args, assert_user_error):
    """The cache is written through a memory map: without its blocks reserved first, the kernel kills
    the process with SIGBUS when a page finds no room."""
    fill(disk, leave=8192)  # room for the file's header page, not for its 4 x 2 x 36 x 36 x 3 pixels
    result = run_cli(*train_args(pairs, tmp_path / "run", "--max_steps", "1", "--cache_dir", str(disk / "cache")))
    assert_user_error(result, str(disk / "cache"), FULL)
    assert os.listdir(disk / "cache") == []  # its temporary file removed


def test_a_checkpoint_that_does_not_fit_keeps_the_earlier_one(disk, pairs, run_cli, train_args, assert_user_error):
    out = disk / "run"
    run_cli(*train_args(pairs, out, "--max_steps", "2"), check=True)
    earlier = (out / ckpt.CHECKPOINT_NAME).read_bytes()
    fill(disk, leave=64 * 1024)  # room for options.json and a losses row, not for a 3.7 MB checkpoint
    result = run_cli(*train_args(pairs, out, "--max_steps", "4"))
    assert_user_error(result, f"{out / ckpt.CHECKPOINT_NAME}: {FULL}")
    assert (out / ckpt.CHECKPOINT_NAME).read_bytes() == earlier
    assert ckpt.load(out / ckpt.CHECKPOINT_NAME, fields=ckpt.RESUME_FIELDS)["step"] == 2
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_a_zip_that_does_not_fit_is_one_line_leaving_nothing(disk, server, invoke, assert_user_error):
    server.files["/data.zip"] = zip_of_zeros(1, 1_000_000)  # a few kB packed
    fill(disk, leave=64 * 1024)
    result = invoke(download_app, "data", "--source", f"{server.url}/data.zip", "-o", str(disk / "raw"))
    assert_user_error(result, f"{disk / 'raw' / 'data'}: {FULL}")
    assert os.listdir(disk / "raw") == []  # neither the archive nor a half-unpacked folder


# --- 2. file names that are not UTF-8 -----------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_trains_with_a_cache(pairs, tmp_path, invoke, tiny_args):
    (pairs / "0.png").rename(pairs / os.fsdecode(b"caf\xe9.png"))  # byte 0xE9: Latin-1, not UTF-8
    cache = tmp_path / "cache"
    args = ["-i", str(pairs), "-o", str(tmp_path / "run"), *tiny_args, "--max_steps", "1", "--cache_dir", str(cache)]
    result = invoke(train_stage.app, *args)
    assert result.returncode == 0, result.stderr
    assert [path.suffix for path in cache.iterdir()] == [".npy"]


def test_a_download_that_does_not_fit_is_one_line_and_not_retried(disk, server, invoke, assert_user_error):
    """The disk, not the network: no retries, and the partial file stays to resume once there is room."""
    server.files["/big.zip"] = os.urandom(2_000_000)  # not unpacked: the write of the download fails first
    fill(disk, leave=256 * 1024)
    result = invoke(download_app, "data", "--source", f"{server.url}/big.zip", "-o", str(disk / "raw"))
    assert_user_error(result, f"{disk / 'raw' / 'data.zip.part'}: {FULL}")
    assert len(server.requests) == 1
