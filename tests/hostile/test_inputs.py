"""Hostile inputs (issue 22): downloads that stall or unpack into bombs, params files that are not
what they seem, damaged checkpoints. Each is refused with one line naming the culprit, and leaves
nothing half-written behind."""

from __future__ import annotations

import shutil
import struct
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import list_images
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages.download import app as download_app
from stages.evaluate import app as evaluate_app
from stages.train import app as train_app
from tests.support.archives import member, tar_gz, zip_of_zeros

# --- downloads --------------------------------------------------------------------------------------


class DrippingServer:
    """Announces ``size`` bytes for any GET, then sends one every ``interval`` seconds until closed:
    with a long interval, a server that stalls after its first byte; with a short one, a trickle."""

    def __init__(self, size: int, interval: float):
        released = self.released = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                for _ in range(size):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    if released.wait(interval):
                        return

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dripping(server):  # server: for its clearing of proxy variables, so 127.0.0.1 is reached directly
    servers = []
    yield lambda size, interval: servers.append(DrippingServer(size, interval)) or servers[-1]
    for dripping_server in servers:
        dripping_server.close()


def download(invoke, url: str, output: Path, *options: str):
    return invoke(download_app, "data", "--source", url, "-o", str(output), *options)


def test_server_that_stalls_is_retried_then_one_line(tmp_path, dripping, invoke, assert_user_error):
    stalling = dripping(size=1000, interval=60)
    result = download(invoke, stalling.url, tmp_path / "raw", "--stall-timeout", "0.5", "--retries", "1")
    assert_user_error(result, stalling.url, "failed after 2 attempts", "no data for 0.5 s")
    assert not (tmp_path / "raw" / "data").exists()


def test_trickling_server_meets_the_deadline(tmp_path, dripping, invoke, assert_user_error):
    trickling = dripping(size=1000, interval=0.1)  # never silent for a whole --stall-timeout
    result = download(invoke, trickling.url, tmp_path / "raw", "--stall-timeout", "1", "--deadline", "1")
    assert_user_error(result, trickling.url, "not downloaded within the deadline of 1 s")
    assert not (tmp_path / "raw" / "data").exists()


def tar_gz_of_zeros(count: int, size: int) -> bytes:
    return tar_gz([(member(f"bomb/{index}.png"), bytes(size)) for index in range(count)])


@pytest.mark.parametrize(
    ("name", "archive", "limit", "fragment"),
    [
        ("bomb.zip", zip_of_zeros(1, 2_000_000), ("--max-unpacked-gb", "0.001"), "unpacks to more than 0.001 GB"),
        ("bomb.tar.gz", tar_gz_of_zeros(3, 500_000), ("--max-unpacked-gb", "0.001"), "unpacks to more than 0.001 GB"),
        ("many.zip", zip_of_zeros(30, 1), ("--max-files", "20"), "more than 20 files"),
        ("many.tar.gz", tar_gz_of_zeros(30, 1), ("--max-files", "20"), "more than 20 files"),
    ],
    ids=["zip-bytes", "tar-bytes", "zip-files", "tar-files"],
)
def test_decompression_bomb_is_refused_leaving_nothing(tmp_path, server, name, archive, limit, fragment, invoke, assert_user_error):
    assert len(archive) < 20_000  # small packed, over the limit unpacked
    server.files[f"/{name}"] = archive
    result = download(invoke, f"{server.url}/{name}", tmp_path / "raw", *limit)
    assert_user_error(result, name, "refused", fragment, limit[0])
    assert list((tmp_path / "raw").iterdir()) == []


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


# --- params files -------------------------------------------------------------------------------------

TRAIN_SECTION = "experiments.facades.train"


def params_file(tmp_path: Path, train_lines: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("experiments:\n  facades:\n    dataset: facades\n    train:\n" + train_lines)
    return path


def run_train(invoke, params: Path, *extra: str):
    return invoke(train_app, "--params", str(params), "--section", TRAIN_SECTION, "-i", str(params.parent / "none"), "-o", str(params.parent / "run"), *extra)


def test_duplicate_params_key_names_file_key_and_line(tmp_path, invoke, assert_user_error):
    params = params_file(tmp_path, "      lr: 0.0002\n      ngf: 8\n      lr: 0.1\n")
    assert_user_error(run_train(invoke, params), str(params), "duplicate key 'lr'", "line 7", "first given at line 5")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["folder", "binary", "not-yaml", "unreadable"])
def test_params_file_that_is_not_yaml_text_is_one_line(tmp_path, kind, invoke, assert_user_error):
    params, fragment = {
        "folder": (tmp_path, "a folder, not a params file"),
        "binary": (tmp_path / "params.yaml", "not a text file"),
        "not-yaml": (tmp_path / "params.yaml", "not valid YAML at line 2"),
        "unreadable": (tmp_path / "params.yaml" / "params.yaml", "cannot read the params file"),  # a path through a file
    }[kind]
    if kind == "binary":
        params.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # an image passed by mistake
    elif kind in ("not-yaml", "unreadable"):
        (tmp_path / "params.yaml").write_text("experiments: [\n  {")
    assert_user_error(run_train(invoke, params), str(params), fragment)
    assert not (tmp_path / "run").exists()


def test_cross_option_check_names_the_params_section(tmp_path, invoke, assert_user_error):
    """Alone, the section fails the whole-file check every stage run does first; with a valid
    section, the command line's value that breaks it still names the section."""
    alone = params_file(tmp_path, "      crop_size: 64\n      load_size: 32\n")
    assert_user_error(run_train(invoke, alone), f"{alone}: {TRAIN_SECTION}: crop_size 64 is larger than load_size 32")
    with_command_line = params_file(tmp_path, "      crop_size: 64\n")
    result = run_train(invoke, with_command_line, "--load-size", "32")
    assert_user_error(result, f"{with_command_line}: {TRAIN_SECTION} (with the options given on the command line): crop_size 64 is larger")
