"""Atomic file and folder writes: a reader sees the old result or the new one, never half of one.

A stage replaces only folders it wrote itself: each holds ``OUTPUT_MARKER``, and any other
non-empty folder (or a file) in an output's place is refused rather than deleted. Staging folders
carry their owner process in their name, so the next run can remove those of killed runs.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

from pix2pix.errors import UserError

OUTPUT_MARKER = ".pix2pix-output"
# Fixed bytes (no time, host or path): the marker is part of DVC-tracked outputs, which must reproduce exactly.
OUTPUT_MARKER_TEXT = "Written by pix2pix: a pix2pix stage may replace this folder as a whole.\n"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with naming_os_errors(path):
            os.fchmod(fd, umasked(0o666))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name; renamed to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(fd, umasked(0o666))
    os.close(fd)
    try:
        with naming_os_errors(path):
            yield Path(tmp)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def naming_os_errors(path: Path, staging: Path | None = None) -> Iterator[None]:
    """Give ``path`` to an OSError that names no file: a failed write() or close() (a full disk) names none,
    and the one-line error (``stages.common.user_errors``) must say where it happened. A file inside
    ``staging``, the hidden folder that becomes ``path``, is named where it was to go."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = os.fspath(path)
        elif staging is not None:
            exc.filename, exc.filename2 = (_moved(name, staging, path) for name in (exc.filename, exc.filename2))
        raise


def _moved(name, source: Path, target: Path):
    """``name`` with the folder ``source`` replaced by ``target`` where it lies inside ``source``; else ``name``."""
    if not isinstance(name, str) or not Path(name).is_relative_to(source):
        return name
    return os.fspath(target / Path(name).relative_to(source))


def umasked(mode: int) -> int:
    """The permissions open()/mkdir() would give: mkstemp/mkdtemp make private 0600/0700 files,
    which would hide results from the rest of a shared group (clusters, DVC caches)."""
    return mode & ~_umask()


@functools.cache
def _umask() -> int:
    """Read once: reading means setting it, which must not race with threads creating files later."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder next to ``target``; on success it replaces ``target``.

    ``target`` must be missing, empty or written by pix2pix (``check_output_folder``), checked
    before any work. On any exception, SIGTERM included, the staging folder is removed and
    ``target`` is left as it was; staging folders of killed runs are removed first.
    """
    target = Path(target)
    check_output_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = _staging_folder(target, ".tmp")
    staging.chmod(umasked(0o777))
    try:
        with naming_os_errors(target, staging):
            with _sigterm_exits():
                yield staging
            replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(source: Path, target: Path) -> None:
    """Mark ``source`` as pix2pix's and move it to ``target``, swapping out an existing ``target`` with two renames.

    Refuses a ``target`` that ``check_output_folder`` refuses (checked again here: it may have
    appeared while ``source`` was being written).
    """
    source, target = Path(source), Path(target)
    check_output_folder(target)
    (source / OUTPUT_MARKER).write_text(OUTPUT_MARKER_TEXT, encoding="utf-8")
    if target.exists() or target.is_symlink():
        old = _staging_folder(target, ".old")
        old.rmdir()
        os.replace(target, old)
        try:
            os.replace(source, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() and not old.is_symlink() else old.unlink(missing_ok=True)
    else:
        os.replace(source, target)


def check_output_folder(folder: Path) -> None:
    """Refuse to write a folder unless it is missing, empty or written by pix2pix: never delete a user's files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder; delete it or choose another --output_dir")
    if folder.is_dir() and not (folder / OUTPUT_MARKER).is_file() and any(folder.iterdir()):
        raise UserError(f"{folder} exists and was not written by pix2pix; delete it or choose another --output_dir")


def claim_output_folder(folder: Path) -> None:
    """Create (or reuse) ``folder`` for a stage that writes into it file by file, marked as pix2pix's."""
    folder = Path(folder)
    check_output_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / OUTPUT_MARKER, OUTPUT_MARKER_TEXT)


def check_output_separate(output_dir: Path, input_dirs: Iterable[Path]) -> None:
    """Refuse an output folder that is, or contains, an input folder (replacing it would delete inputs),
    or that ``check_output_folder`` refuses."""
    output = Path(output_dir).resolve()
    for folder in input_dirs:
        source = Path(folder).resolve()
        if source == output or output in source.parents:
            raise UserError(f"{output_dir}: output folder must not be or contain the input folder {folder}")
    check_output_folder(Path(output_dir))


def check_unique_outputs(outputs: Iterable[tuple[Path, str]]) -> None:
    """Refuse two inputs that would be written under one output name (``x.png`` and ``x.jpg`` both give ``x``)."""
    seen: dict[str, Path] = {}
    for source, name in outputs:
        if name in seen:
            raise UserError(f"{seen[name]} and {source}: both would be written as {name}")
        seen[name] = source


def remove_stale_staging(target: Path) -> None:
    """Delete the staging folders next to ``target`` that runs killed outright (SIGKILL, power loss) left behind.

    Only folders whose owner process (named in the folder's name) is gone on this host; a
    swapped-out ``.old`` folder only once ``target`` is back, as it may be the only copy.
    """
    target = Path(target)
    prefix = f".{target.name}."
    for path in target.parent.glob(f"{glob.escape(prefix)}*"):
        suffix_ok = path.suffix == ".tmp" or (path.suffix == ".old" and target.exists())
        if suffix_ok and path.is_dir() and not path.is_symlink() and _owner_gone(path.name[len(prefix) :]):
            shutil.rmtree(path, ignore_errors=True)


def _staging_folder(target: Path, suffix: str) -> Path:
    """A new hidden folder ``.NAME.HOST+PID+START+random.SUFFIX`` beside ``target``: its owner is in its name."""
    me = psutil.Process()
    owner = f"{socket.gethostname()}+{me.pid}+{int(me.create_time())}"
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{owner}+", suffix=suffix))


def _owner_gone(name: str) -> bool:
    """Whether the process named in a staging folder's name (see ``_staging_folder``) has ended; False if unsure."""
    owner = name.rsplit("+", 1)[0].split("+")  # HOST+PID+START, then the random part and the suffix
    if len(owner) != 3 or owner[0] != socket.gethostname() or not (owner[1].isdigit() and owner[2].isdigit()):
        return False  # another machine's, or not a staging folder of ours
    _, pid, start = owner
    try:
        return int(psutil.Process(int(pid)).create_time()) != int(start)  # the PID now belongs to another process
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Let SIGTERM (``kill``, timeouts, batch schedulers) raise ``SystemExit(143)``, so cleanup runs as on Ctrl-C.

    Only in the main thread (the only one Python delivers signals to) and only where SIGTERM
    would otherwise kill the process outright: a handler someone else installed stays.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)
