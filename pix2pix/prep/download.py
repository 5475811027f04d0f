"""Fetching the pix2pix datasets: resumable, retried, size- and sha256-checked, safely unpacked.

A download is bounded (``Limits``): a server that stops sending is retried, one that trickles
meets a deadline, and an archive that would unpack beyond the size or file count of any pix2pix
dataset (a decompression bomb) is refused before its contents are written.

The first download records the archive's sha256 and a summary of the unpacked tree in
``OUTPUT_DIR/NAME.lock.json``. Later runs verify against it: an intact dataset is not fetched
again, and a re-download must produce the same archive (or match ``sha256`` when one is given).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text, naming_os_errors, replace_directory, umasked

REMOTE_DATASETS = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")
URL_TEMPLATE = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)
CHUNK_BYTES = 1 << 20
USER_AGENT = "pix2pix-pipeline (+urllib)"

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    fetched: bool  # False when an intact copy was already there


@dataclass(frozen=True)
class Limits:
    """What one download may take. The defaults leave room for the largest pix2pix dataset,
    edges2handbags (8.6 GB packed, about 139,000 files), on a slow link."""

    stall_timeout_s: float = 60  # no byte for this long: the connection is dead, retry it
    deadline_s: float = 12 * 3600  # all attempts together: a server trickling bytes is not waited on forever
    max_unpacked_bytes: int = 32 * 10**9
    max_files: int = 500_000


class _WriteFailed(OSError):
    """Writing the downloaded bytes failed (a full disk): the partial file stays, to resume once there is room."""


class _Transient(Exception):
    """A failure worth retrying: connection trouble, a cut-off transfer, a busy server."""


def dataset_url(name: str) -> str:
    if name not in REMOTE_DATASETS:
        raise UserError(f"unknown dataset {name!r} (choose from {', '.join(REMOTE_DATASETS)}, or give --url)")
    return URL_TEMPLATE.format(name=name)


def check_dataset_name(name: str) -> None:
    """A dataset's folder name must stay inside the output folder."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"{name!r}: a dataset name is a plain folder name (letters, digits, '.', '_', '-')")


def archive_suffix(url: str) -> str:
    """The archive type of a URL, which must be http(s) or file and end in .tar.gz, .tgz or .zip."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https", "file"):
        raise UserError(f"{url}: only http://, https:// and file:// URLs are supported")
    path = parsed.path.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if path.endswith(suffix):
            return suffix
    raise UserError(f"{url}: not a .tar.gz, .tgz or .zip archive")


def download_dataset(
    name: str,
    output_dir: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    retries: int = 5,
    backoff_s: float = 1.0,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> DownloadResult:
    """Make ``output_dir/name`` hold the unpacked dataset, downloading only when needed."""
    check_dataset_name(name)
    url = url or dataset_url(name)
    suffix = archive_suffix(url)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise UserError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    output_dir = Path(output_dir)
    target, lock_path = output_dir / name, output_dir / f"{name}.lock.json"
    lock = _read_lock(lock_path)
    if lock and sha256 in (None, lock["sha256"]) and target.is_dir() and tree_summary(target) == lock["tree"]:
        return DownloadResult(target, lock["sha256"], fetched=False)
    if target.exists() and log:
        log(f"{target} does not match {lock_path.name} (missing, incomplete or changed); fetching it again")
    expected = sha256 or (lock or {}).get("sha256")

    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir / f"{name}{suffix}"
    if not archive.exists():  # a complete archive left by an interrupted run is reused, then verified
        fetch(url, archive, retries=retries, backoff_s=backoff_s, limits=limits, progress=progress, log=log)
    with archive.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    try:
        if expected and digest != expected:
            origin = "--sha256" if sha256 else f"recorded in {lock_path} by the first download; delete it to accept a new archive"
            raise UserError(f"{url}: sha256 mismatch: got {digest}, expected {expected} ({origin})")
        extract_archive(archive, target, source=url, limits=limits)
    finally:
        archive.unlink(missing_ok=True)
    lock = {"name": name, "url": url, "sha256": digest, "tree": tree_summary(target)}
    atomic_write_text(lock_path, json.dumps(lock, indent=2) + "\n")
    return DownloadResult(target, digest, fetched=True)


def _read_lock(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(lock.get("sha256"), str) and isinstance(lock.get("tree"), dict)):
            raise ValueError("missing sha256 or tree")
    except (ValueError, AttributeError) as exc:
        raise UserError(f"{path}: unreadable lock file ({exc}); delete it to download afresh") from None
    return lock


def tree_summary(folder: Path) -> dict:
    """File count, total bytes and a hash of the (path, size) listing: cheap to recheck by ``stat``."""
    listing, count, total = hashlib.sha256(), 0, 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for file_name in sorted(files):
            path = Path(root, file_name)
            size = path.lstat().st_size
            listing.update(f"{path.relative_to(folder).as_posix()}\0{size}\n".encode())
            count, total = count + 1, total + size
    return {"files": count, "bytes": total, "listing_sha256": listing.hexdigest()}


# --- fetching -----------------------------------------------------------------------------------


def fetch(
    url: str,
    target: Path,
    *,
    retries: int = 5,
    backoff_s: float = 1.0,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Stream ``url`` into ``target`` through ``target.part``, resuming it with HTTP Range.

    Transient failures (a stall included) are retried with exponential backoff until
    ``limits.deadline_s``; the partial file stays for the next run if all attempts fail.
    """
    part = target.with_name(target.name + ".part")
    deadline = time.monotonic() + limits.deadline_s
    problem = None
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff_s * 2 ** (attempt - 1)
            if log:
                log(f"retrying in {wait:g} s ({problem})")
            time.sleep(min(wait, max(deadline - time.monotonic(), 0)))
        try:
            _fetch_once(url, part, limits, deadline, progress, log)
        except _Transient as exc:
            problem = exc
            if time.monotonic() >= deadline:
                break
            continue
        os.replace(part, target)
        return
    if time.monotonic() >= deadline:
        raise UserError(f"{url}: not downloaded within the deadline of {limits.deadline_s:g} s (--deadline; last problem: {problem}); run again to resume")
    raise UserError(f"{url}: download failed after {retries + 1} attempts ({problem}); run again to resume")


def _fetch_once(url: str, part: Path, limits: Limits, deadline: float, progress: Progress | None, log: Callable[[str], None] | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    stalled = f"no data for {limits.stall_timeout_s:g} s (--stall-timeout)"
    timeout = max(min(limits.stall_timeout_s, deadline - time.monotonic()), 0.001)  # a blocked read wakes by the deadline
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            part.unlink()
            raise _Transient("the server cannot resume the partial download; starting over") from None
        if exc.code in RETRY_STATUS:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if urllib.parse.urlparse(url).scheme == "file":
            raise UserError(f"{url}: cannot read ({exc.reason})") from None
        raise _Transient(stalled if isinstance(exc.reason, TimeoutError) else str(exc.reason)) from None
    except TimeoutError:
        raise _Transient(stalled) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(str(exc) or type(exc).__name__) from None

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if getattr(response, "status", None) == 206:
            match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise _Transient("the server resumed at the wrong place; starting over")
            total = int(match.group(2)) if match.group(2) != "*" else None
            if log:
                log(f"resuming at {have / 1e6:.1f} MB")
        else:  # a full response (the server ignored Range, or a file: URL)
            have, total = 0, length
        done = have
        try:
            with part.open("ab" if have else "wb", buffering=0) as handle:  # unbuffered: a full disk fails in write, below
                while chunk := response.read1(CHUNK_BYTES):  # what has arrived: a trickle still meets the deadline
                    try:
                        handle.write(chunk)
                    except OSError as exc:  # the disk, not the network: not worth retrying
                        raise _WriteFailed(exc.errno, exc.strerror, os.fspath(part)) from None
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                    if time.monotonic() >= deadline:
                        raise _Transient(f"still receiving at {done} bytes")
        except TimeoutError:
            raise _Transient(f"{stalled} at {done} bytes") from None
        except _WriteFailed:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"connection lost at {done} bytes ({exc or type(exc).__name__})") from None
    if total is not None and done < total:
        raise _Transient(f"connection closed at {done} of {total} bytes")
    if total is not None and done > total:
        part.unlink()
        raise _Transient(f"received {done} bytes, more than the announced {total}; starting over")


# --- safe extraction ------------------------------------------------------------------------------


def extract_archive(archive: Path, target: Path, *, source: str | None = None, limits: Limits = Limits()) -> None:
    """Unpack ``archive`` next to ``target``, then rename it into place.

    Refuses (with nothing kept) any entry that is absolute, contains ``..``, is a link pointing
    out of the target, or is a device or other special file, and an archive holding more files
    or bytes than ``limits`` allow. A single top-level folder in the archive (``facades/...``)
    becomes ``target`` itself.
    """
    source = source or str(archive)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".extract"))
    staging.chmod(umasked(0o777))  # it becomes the dataset folder when the archive has no top folder
    try:
        with naming_os_errors(target):  # an entry's failed write (a full disk) names no file
            if archive.name.lower().endswith(".zip"):
                _extract_zip(archive, staging, source, limits)
            else:
                _extract_tar(archive, staging, source, limits)
            entries = list(staging.iterdir())
            if not entries:
                raise UserError(f"{source}: the archive is empty")
            single = len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink()
            replace_directory(entries[0] if single else staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unsafe_name(name: str) -> str | None:
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[\\/]+", name):
        return "'..' in the path leaves the target folder"
    return None


def _unsafe_symlink(name: str, link: str) -> str | None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    if link.startswith(("/", "\\")) or resolved == ".." or resolved.startswith("../"):
        return f"symbolic link pointing outside the target folder (-> {link})"
    return None


def _check_unpacked(source: str, files: int, size: int, limits: Limits) -> None:
    """A decompression bomb is refused by its declared sizes, before its data is written."""
    if files > limits.max_files:
        raise UserError(f"{source}: refused: the archive holds more than {limits.max_files} files and folders (--max-files)")
    if size > limits.max_unpacked_bytes:
        raise UserError(
            f"{source}: refused: the archive unpacks to more than {limits.max_unpacked_bytes / 1e9:g} GB (--max-unpacked-gb)"
        )


def _extract_tar(archive: Path, staging: Path, source: str, limits: Limits) -> None:
    files, size = 0, 0

    def safe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        nonlocal files, size  # the stream is read once: count the entries as they come
        files, size = files + 1, size + (member.size if member.isreg() else 0)
        _check_unpacked(source, files, size, limits)
        reason = _unsafe_name(member.name)
        if reason is None and member.issym():
            reason = _unsafe_symlink(member.name, member.linkname)
        elif reason is None and member.islnk() and _unsafe_name(member.linkname):
            reason = f"hard link pointing outside the target folder (-> {member.linkname})"
        elif reason is None and not (member.isreg() or member.isdir() or member.islnk() or member.issym()):
            reason = "device, FIFO or other special file"
        if reason is None:
            try:
                return tarfile.data_filter(member, dest)
            except tarfile.FilterError as exc:
                reason = str(exc)
        raise UserError(f"{source}: refused unsafe archive entry {member.name!r}: {reason}")

    try:
        with tarfile.open(archive, "r|*") as tar:  # streamed: one pass over a large .tar.gz
            tar.extractall(staging, filter=safe)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{source}: not a valid tar archive ({exc})") from None


def _extract_zip(archive: Path, staging: Path, source: str, limits: Limits) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = zipped.infolist()  # zipfile never unpacks more than an entry's declared size
            _check_unpacked(source, len(entries), sum(info.file_size for info in entries), limits)
            for info in entries:
                kind = stat.S_IFMT(info.external_attr >> 16)
                reason = _unsafe_name(info.filename)
                if reason is None and kind == stat.S_IFLNK:
                    link = zipped.read(info).decode("utf-8", "replace")
                    reason = _unsafe_symlink(info.filename, link) or f"symbolic link (-> {link}); zip links are not supported"
                elif reason is None and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    reason = "device, FIFO or other special file"
                if reason:
                    raise UserError(f"{source}: refused unsafe archive entry {info.filename!r}: {reason}")
            zipped.extractall(staging)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UserError(f"{source}: not a valid zip archive ({exc})") from None
