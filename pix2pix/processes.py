"""Processes that end with the one that started them, however it ends."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish"})


def signal_on_parent_death(signum: int, parent_pid: int) -> None:
    """Have the kernel send ``signum`` to this process when ``parent_pid``, its parent, dies (Linux;
    elsewhere nothing). If that already happened, the signal is sent now."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)


def signal_on_launcher_death(signum: int, poll_seconds: float = 0.5) -> None:
    """Send ``signum`` to this process when the program that launched it dies (Linux; elsewhere nothing).

    The launcher is the parent, or the parent's parent when the parent is a shell running this
    command: ``/bin/sh -c CMD`` (dash, DVC's shell when SHELL is unset) forks rather than execs, and
    a shell outlives its killed parent. The parent's death comes from the kernel; the shell's
    parent is watched by a daemon thread, which sees the shell handed to another process."""
    if sys.platform != "linux":
        return
    parent = os.getppid()
    launcher = _parent_of(parent) if _name(parent) in SHELLS else None
    signal_on_parent_death(signum, parent if parent != 1 else 0)
    if launcher is None:
        return
    if launcher == 1:  # it died before this process started
        os.kill(os.getpid(), signum)
        return

    def watch() -> None:
        while _parent_of(parent) == launcher:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, name="end-with-launcher", daemon=True).start()


def _name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _parent_of(pid: int) -> int | None:
    """The parent PID of ``pid`` from /proc (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])
