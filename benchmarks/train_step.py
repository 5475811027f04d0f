"""Seconds per training step at 64, 128 and 256 px and generator images/s: the core subset of run.py.

    python benchmarks/train_step.py [--quick] [--json] [--reference DIR]

Same measurements, table and JSON as ``benchmarks/run.py --items train_step,infer``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (benchmarks/run.py, next to this file)

if __name__ == "__main__":
    sys.argv[1:1] = ["--items", "train_step,infer"]
    run.main()
