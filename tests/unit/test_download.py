"""download: against a real HTTP server on 127.0.0.1 (started here, with Range support), serving
generated archives. Resume, retry, checksums, idempotence, and malicious archives. No other network."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.errors import UserError
from pix2pix.prep.download import download_dataset, extract_archive
from tests.support.archives import member, tar_gz
from tests.support.file_server import Server


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()





def dataset_archive(seed: int = 0) -> bytes:
    """Like the real ones: one top folder holding train/ and val/ pairs."""
    return tar_gz(
        [
            (member("facades", tarfile.DIRTYPE), None),
            (member("facades/train/1.png"), png_bytes(seed)),
            (member("facades/train/2.png"), png_bytes(seed + 1)),
            (member("facades/val/1.png"), png_bytes(seed + 2)),
        ]
    )


def zip_bytes(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def fetch(server: Server, output: Path, name: str = "facades", path: str = "/facades.tar.gz", **kwargs):
    return download_dataset(name, output, url=server.url + path, backoff_s=0, **kwargs)


# --- good downloads ------------------------------------------------------------------------------


def test_download_unpacks_records_the_checksum_and_is_not_repeated(server, tmp_path):
    archive = dataset_archive()
    server.files["/facades.tar.gz"] = archive
    result = fetch(server, tmp_path)
    assert result.fetched and result.path == tmp_path / "facades"
    assert sorted(str(p.relative_to(result.path)) for p in result.path.rglob("*.png")) == ["train/1.png", "train/2.png", "val/1.png"]
    assert (result.path / "train" / "1.png").read_bytes() == png_bytes(0)
    lock = json.loads((tmp_path / "facades.lock.json").read_text())
    assert lock["sha256"] == hashlib.sha256(archive).hexdigest() == result.sha256
    assert lock["tree"]["files"] == 4  # the three images and the folder's .pix2pix-output marker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades", "facades.lock.json"]  # archive and temporaries gone

    again = fetch(server, tmp_path)
    assert not again.fetched and len(server.requests) == 1
    again = fetch(server, tmp_path, sha256=hashlib.sha256(archive).hexdigest().upper())
    assert not again.fetched and len(server.requests) == 1


def test_an_incomplete_dataset_is_fetched_again_and_must_match_the_recorded_checksum(server, tmp_path):
    server.files["/facades.tar.gz"] = dataset_archive()
    fetch(server, tmp_path)
    (tmp_path / "facades" / "val" / "1.png").unlink()
    assert fetch(server, tmp_path).fetched
    assert (tmp_path / "facades" / "val" / "1.png").exists()

    server.files["/facades.tar.gz"] = dataset_archive(seed=7)  # the upstream archive changed
    (tmp_path / "facades" / "val" / "1.png").unlink()
    with pytest.raises(UserError, match=r"sha256 mismatch: got .*recorded in .*facades\.lock\.json"):
        fetch(server, tmp_path)
    assert not (tmp_path / "facades.tar.gz").exists()
    assert (tmp_path / "facades" / "train" / "1.png").read_bytes() == png_bytes(0)  # the old copy was not replaced


def test_a_cut_off_transfer_is_resumed_with_range(server, tmp_path):
    archive = dataset_archive()
    server.files["/facades.tar.gz"] = archive
    server.cut.add("/facades.tar.gz")
    messages = []
    result = fetch(server, tmp_path, log=messages.append)
    assert result.sha256 == hashlib.sha256(archive).hexdigest()
    assert server.requests == [("/facades.tar.gz", None), ("/facades.tar.gz", f"bytes={len(archive) // 2}-")]
    assert any("connection closed at" in m for m in messages) and any("resuming" in m for m in messages)


def test_a_partial_download_survives_a_failed_run_and_resumes_next_time(server, tmp_path):
    archive = dataset_archive()
    server.files["/facades.tar.gz"] = archive
    server.cut.add("/facades.tar.gz")
    with pytest.raises(UserError, match="download failed after 1 attempts .*run again to resume"):
        fetch(server, tmp_path, retries=0)
    assert (tmp_path / "facades.tar.gz.part").stat().st_size == len(archive) // 2
    assert not (tmp_path / "facades").exists()
    assert fetch(server, tmp_path, retries=0).fetched
    assert server.requests[-1][1] == f"bytes={len(archive) // 2}-"


def test_a_server_ignoring_range_restarts_from_zero(server, tmp_path):
    archive = dataset_archive()
    server.files["/facades.tar.gz"] = archive
    server.ignore_range = True
    tmp_path.joinpath("facades.tar.gz.part").write_bytes(b"stale bytes from elsewhere")
    assert fetch(server, tmp_path).sha256 == hashlib.sha256(archive).hexdigest()


def test_zip_from_a_file_url_without_a_top_folder(tmp_path):
    source = tmp_path / "mine.zip"
    source.write_bytes(zip_bytes([("a.png", png_bytes(1)), ("sub/b.png", png_bytes(2))]))
    result = download_dataset("mine", tmp_path / "data", url=source.as_uri())
    assert sorted(str(p.relative_to(result.path)) for p in result.path.rglob("*.png")) == ["a.png", "sub/b.png"]
    assert source.exists()


# --- failures ------------------------------------------------------------------------------------


def test_404_is_one_line_without_retries(server, tmp_path, assert_user_error, run_cli):
    result = run_cli("stages.download", "facades", "--url", server.url + "/missing.tar.gz", "-o", str(tmp_path / "raw"))
    assert_user_error(result, "/missing.tar.gz", "HTTP 404")
    assert len(server.requests) == 1
    assert not (tmp_path / "raw" / "facades").exists()


def test_wrong_checksum_is_one_line_and_nothing_is_unpacked(server, tmp_path, assert_user_error, run_cli):
    server.files["/facades.tar.gz"] = dataset_archive()
    result = run_cli(
        "stages.download", "facades", "--url", server.url + "/facades.tar.gz", "--sha256", "0" * 64, "--output-dir", str(tmp_path)
    )
    assert_user_error(result, "sha256 mismatch", "0" * 64, "--sha256")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/x.tar.gz", "only http://, https:// and file:// URLs"),
        ("http://127.0.0.1:9/x.rar", "not a .tar.gz, .tgz or .zip archive"),
    ],
)
def test_unsupported_urls(tmp_path, url, message):
    with pytest.raises(UserError, match=message):
        download_dataset("x", tmp_path, url=url)


def test_unknown_names_and_bad_checksums_are_refused(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'fa' \\(choose from facades, cityscapes"):
        download_dataset("fa", tmp_path)
    with pytest.raises(UserError, match="plain folder name"):
        download_dataset("../up", tmp_path, url="http://127.0.0.1:9/x.zip")
    with pytest.raises(UserError, match="64 hexadecimal digits"):
        download_dataset("facades", tmp_path, sha256="abc")


def test_a_corrupt_archive_is_refused(server, tmp_path):
    server.files["/facades.tar.gz"] = b"\x1f\x8b" + b"garbage" * 50
    with pytest.raises(UserError, match="not a valid tar archive"):
        fetch(server, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- malicious archives ------------------------------------------------------------------------------


def malicious(kind: str, outside: Path) -> tuple[str, bytes]:
    ok = (member("facades/ok.png"), png_bytes(0))
    if kind == "traversal":
        return ".tar.gz", tar_gz([ok, (member("facades/../../evil.txt"), b"x")])
    if kind == "absolute":
        return ".tar.gz", tar_gz([ok, (member(str(outside / "evil.txt")), b"x")])
    if kind == "symlink out":
        return ".tar.gz", tar_gz([ok, (member("facades/link", tarfile.SYMTYPE, "../../.."), None), (member("facades/link/evil.txt"), b"x")])
    if kind == "hard link out":
        return ".tar.gz", tar_gz([ok, (member("facades/hard", tarfile.LNKTYPE, "../outside.txt"), None)])
    if kind == "device":
        return ".tar.gz", tar_gz([ok, (member("facades/null", tarfile.CHRTYPE), None)])
    if kind == "zip traversal":
        return ".zip", zip_bytes([("facades/ok.png", png_bytes(0)), ("facades/../../evil.txt", b"x")])
    if kind == "zip absolute":
        return ".zip", zip_bytes([("facades/ok.png", png_bytes(0)), (str(outside / "evil.txt"), b"x")])
    link = zipfile.ZipInfo("facades/link")
    link.external_attr = 0o120777 << 16
    return ".zip", zip_bytes([("facades/ok.png", png_bytes(0)), (link, b"../../../etc")])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("traversal", "'..' in the path"),
        ("absolute", "absolute path"),
        ("symlink out", "symbolic link pointing outside"),
        ("hard link out", "hard link pointing outside"),
        ("device", "device, FIFO or other special file"),
        ("zip traversal", "'..' in the path"),
        ("zip absolute", "absolute path"),
        ("zip symlink out", "symbolic link pointing outside"),
    ],
)
def test_malicious_archives_are_refused_and_nothing_escapes(server, tmp_path, kind, reason):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "outside.txt").write_text("precious")
    suffix, data = malicious(kind, outside)
    server.files[f"/facades{suffix}"] = data
    with pytest.raises(UserError, match="refused unsafe archive entry") as error:
        fetch(server, tmp_path / "raw" / "deep", path=f"/facades{suffix}")
    assert reason in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "outside", "outside.txt", "raw"]
    assert (tmp_path / "outside.txt").read_text() == "precious"


def test_malicious_archive_through_the_cli(server, tmp_path, assert_user_error, run_cli):
    server.files["/facades.tar.gz"] = malicious("traversal", tmp_path)[1]
    result = run_cli("stages.download", "facades", "--url", server.url + "/facades.tar.gz", "-o", str(tmp_path / "raw"))
    assert_user_error(result, "refused unsafe archive entry 'facades/../../evil.txt'")
    assert not (tmp_path / "evil.txt").exists() and list((tmp_path / "raw").iterdir()) == []


def test_extract_keeps_links_that_stay_inside(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(
        tar_gz([(member("d/a.png"), png_bytes(0)), (member("d/b.png", tarfile.SYMTYPE, "a.png"), None), (member("d/c.png", tarfile.LNKTYPE, "d/a.png"), None)])
    )
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "b.png").is_symlink() and (tmp_path / "out" / "c.png").read_bytes() == png_bytes(0)


# --- sources: what params.yaml's `source` may name ----------------------------------------------


def test_the_source_fills_the_named_folder(server, tmp_path, run_cli):
    """NAME is the folder; --source (alias --url) what fills it: an archive URL here."""
    server.files["/facades.tar.gz"] = archive = dataset_archive()
    digest = hashlib.sha256(archive).hexdigest()
    result = run_cli(
        "stages.download", "pairs", "--source", server.url + "/facades.tar.gz", "--sha256", digest, "-o", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(tmp_path / "pairs")) for p in (tmp_path / "pairs").rglob("*.png")) == [
        "train/1.png", "train/2.png", "val/1.png",
    ]  # fmt: skip


def test_a_folder_source_is_copied_with_its_sub_folders(tmp_path, run_cli):
    mine = tmp_path / "mine"
    (mine / "train").mkdir(parents=True)
    (mine / "train" / "a.png").write_bytes(png_bytes(1))
    (mine / "b.jpg").write_bytes(b"not decoded here")
    (mine / "notes.txt").write_text("not an image")
    (mine / ".hidden.png").write_bytes(png_bytes(2))
    result = run_cli("stages.download", "photos", "--source", str(mine), "-o", str(tmp_path / "raw"))
    assert result.returncode == 0, result.stderr
    assert "copied 2 images" in result.stdout
    copied = tmp_path / "raw" / "photos"
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*") if p.is_file()) == [".pix2pix-output", "b.jpg", "train/a.png"]
    assert (copied / "train" / "a.png").read_bytes() == png_bytes(1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["photos", "--source", "no-such-folder"], "source 'no-such-folder': not a built-in dataset (synthetic-facades, sample-photos)"),
        (["photos", "--source", "sample-photos", "--sha256", "a" * 64], "--sha256 applies to downloaded archives"),
        (["facades", "--count", "3"], "--count, --size and --seed only apply to synthetic-facades and sample-photos"),
        (["../up", "--source", "sample-photos"], "plain folder name"),
        (["x", "--source", "http://127.0.0.1:9/x.rar"], "not a .tar.gz, .tgz or .zip archive"),
    ],
)
def test_sources_are_checked_before_anything_is_fetched_or_written(tmp_path, assert_user_error, run_cli, args, message):
    assert_user_error(run_cli("stages.download", *args, "-o", str(tmp_path / "raw")), message)
    assert not (tmp_path / "raw").exists()


def test_a_builtin_source_writes_under_the_given_name(tmp_path, run_cli):
    result = run_cli("stages.download", "facades", "--source", "synthetic-facades", "--count", "2", "--size", "32", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "facades").glob("*.png")) == ["cmp_0001.png", "cmp_0002.png"]
