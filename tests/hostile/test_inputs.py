"""Hostile inputs (issue 22): downloads that stall or unpack into bombs, params files that are not
what they seem, damaged checkpoints. Each is refused with one line naming the culprit, and leaves
nothing half-written behind."""

from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages.evaluate import app as evaluate_app
from stages.train import app as train_app

# --- checkpoints ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, make_pairs, tiny_config) -> Path:
    """A finished two-step run (checkpoint.pt and generator.pt), copied by each test that alters it."""
    root = tmp_path_factory.mktemp("trained")
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs")), root / "run")
    return root


@pytest.fixture
def run_copy(tmp_path, trained_run) -> Path:
    shutil.copytree(trained_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def flip_bit_in_largest_tensor(path: Path) -> None:
    """Flip one bit in the middle of the biggest tensor's bytes: the zip and the pickle stay readable."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26 : record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length
    data[start + record.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_same_training_twice_gives_byte_identical_checkpoints(tmp_path, trained_run, tiny_config):
    train(TrainConfig(max_steps=2, **tiny_config), list_images(trained_run / "pairs"), tmp_path / "again")
    for name in (ckpt.CHECKPOINT_NAME, ckpt.GENERATOR_NAME):
        assert (tmp_path / "again" / name).read_bytes() == (trained_run / "run" / name).read_bytes(), name
    assert ckpt.CHECKSUM_KEY in torch.load(trained_run / "run" / ckpt.GENERATOR_NAME, weights_only=True)


def test_bit_flipped_generator_is_refused_in_one_line(run_copy, invoke, assert_user_error):
    generator = run_copy / "run" / ckpt.GENERATOR_NAME
    flip_bit_in_largest_tensor(generator)
    torch.load(generator, weights_only=True)  # torch itself does not notice
    result = invoke(evaluate_app, "-c", str(generator), "-i", str(run_copy / "pairs"), "-o", str(run_copy / "results"))
    assert_user_error(result, str(generator), "damaged checkpoint", "sha256")
    assert not (run_copy / "results").exists()


def test_checkpoint_saved_before_checksums_still_loads(run_copy):
    generator = run_copy / "run" / ckpt.GENERATOR_NAME
    payload = torch.load(generator, weights_only=True)
    del payload[ckpt.CHECKSUM_KEY]
    torch.save(payload, generator)
    model, config = generator_from_checkpoint(generator)
    assert config["crop_size"] == 32 and sum(p.numel() for p in model.parameters()) > 0


def rewrite(path: Path, change) -> None:
    """Alter a checkpoint's contents and save it properly (a valid checksum): what is left to catch is the content."""
    payload = ckpt.load(path)
    change(payload)
    ckpt.save(payload, path)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda payload: payload.pop("rng"), "'rng' should be a dict, found missing"),
        (lambda payload: payload.update(step="x"), "'step' should be a count >= 0, found str 'x'"),
        (lambda payload: payload["optimizer_g"].update(param_groups=[]), "does not hold a matching training state"),
        (lambda payload: payload.update(optimizer_d="broken"), "does not hold a matching training state"),
        (lambda payload: payload["rng"].update(torch=torch.zeros(3)), "does not hold a matching training state"),
    ],
    ids=["missing-rng", "step-x", "optimiser-groups", "optimiser-not-a-dict", "rng-state"],
)
def test_malformed_checkpoint_is_one_line_on_resume(run_copy, change, fragment, invoke, assert_user_error, tiny_args):
    checkpoint = run_copy / "run" / ckpt.CHECKPOINT_NAME
    rewrite(checkpoint, change)
    result = invoke(train_app, "-i", str(run_copy / "pairs"), "-o", str(run_copy / "run"), *tiny_args, "--max-steps", "4")
    assert_user_error(result, str(checkpoint), fragment)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda payload: payload.pop("config"), "'config' should be a dict, found missing"),
        (lambda payload: payload["generator"].popitem(), "does not hold a matching generator"),
    ],
    ids=["missing-config", "missing-weight"],
)
def test_malformed_generator_is_one_line_on_evaluate(run_copy, change, fragment, invoke, assert_user_error):
    generator = run_copy / "run" / ckpt.GENERATOR_NAME
    rewrite(generator, change)
    result = invoke(evaluate_app, "-c", str(generator), "-i", str(run_copy / "pairs"), "-o", str(run_copy / "results"))
    assert_user_error(result, str(generator), fragment)
    assert not (run_copy / "results").exists()
