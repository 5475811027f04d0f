"""Processes that end with the one that started them, however it ends."""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
