"""Process-wide speed settings, each measured on a 2-core CPU (see benchmarks/README.md).

- glibc returns every large freed block to the OS and faults it back in on the next step;
  raising the mmap and trim thresholds keeps those blocks (1.1-1.6x per training step).
- OpenMP threads that spin while waiting stall a whole step when one core is busy with
  anything else; a passive wait policy halves that damage and costs nothing on a quiet machine.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 2**31 - 1  # mallopt takes an int


def tune_process() -> None:
    """Apply the settings; call before torch is imported (the OpenMP one is read at start-up)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc (musl): nothing to tune
            libc = None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_KEEP_BYTES))
            libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_KEEP_BYTES))
