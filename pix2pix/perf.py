"""Process-wide speed settings, each measured on a 2-core CPU (see benchmarks/README.md).

- glibc returns every large freed block to the OS and faults it back in on the next step;
  raising the mmap and trim thresholds keeps those blocks (1.1-1.6x per training step).
- OpenMP threads that spin while waiting stall a whole step when one core is busy with
  anything else (GNU OpenMP spins 300,000 times by default), and threads that sleep at once
  pay a wake-up on each of a step's thousand parallel regions. A short spin (1,000) keeps the
  quiet-machine speed and most of the robustness: at 64 px, 0.089-0.095 s per step quiet and
  0.18 s beside one busy process, against 0.088-0.098 / 0.30 s for the default spin and
  0.11-0.12 / 0.15 s for ``OMP_WAIT_POLICY=PASSIVE``. A user's own OMP_WAIT_POLICY or
  GOMP_SPINCOUNT wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 2**31 - 1  # mallopt takes an int
OPENMP_SPINS = "1000"


def tune_process() -> None:
    """Apply the settings; call before torch is imported (the OpenMP one is read at start-up)."""
    if "torch" not in sys.modules and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
        os.environ["GOMP_SPINCOUNT"] = OPENMP_SPINS
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc (musl): nothing to tune
            libc = None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_KEEP_BYTES))
            libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_KEEP_BYTES))
