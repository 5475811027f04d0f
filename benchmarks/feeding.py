"""Step time of whole training runs with batches made ahead in a background thread, and made in line.

    python benchmarks/feeding.py [--sizes 64,128] [--batch-size 1] [--steps 30] [--rounds 3]

Each round trains every size once each way, taking turns (ahead, in line / in line, ahead, ...),
from the same seed and synthetic pairs, through ``pix2pix.train.pix2pix_model.train`` as the train
stage calls it. "In line" swaps the feed's thread for an executor that makes each batch in the
training thread as it is queued: the loop's behaviour before the feed. Prints per size and way the
median step time of each run (after 3 warm-up steps) and the last run's data_wait_share.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from pix2pix.perf import tune_process

tune_process()

import numpy as np
from PIL import Image

from pix2pix.train import feeding, pix2pix_model
from pix2pix.train.config import TrainConfig
from pix2pix.train.loop import Callbacks

WARMUP = 3
THREADED = feeding.ThreadPoolExecutor


class InLine:
    """An executor that runs each call when it is submitted, in the submitting thread."""

    def __init__(self, **_: object):
        pass

    def submit(self, function, *args) -> Future:
        future = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self, **_: object) -> None:
        pass


def make_pairs(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(folder / f"{index}.png")
    return sorted(folder.iterdir())


def median_step(config: TrainConfig, paths: list[Path], output: Path, ahead: bool) -> tuple[float, float]:
    """(median seconds per step after the warm-up, the run's data_wait_share)."""
    feeding.ThreadPoolExecutor = THREADED if ahead else InLine
    ends: list[float] = []
    summary = pix2pix_model.train(config, paths, output, Callbacks(on_step=lambda report: ends.append(time.perf_counter())))
    return statistics.median(np.diff(ends[WARMUP:])), summary["data_wait_share"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    times: dict[tuple[int, bool], list[float]] = {(size, ahead): [] for size in sizes for ahead in (True, False)}
    shares: dict[tuple[int, bool], float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for size in sizes:
            load = size * 9 // 8
            paths = make_pairs(root / f"pairs{size}", max(8, args.batch_size * 2), load)
            config = TrainConfig(crop_size=size, load_size=load, batch_size=args.batch_size, max_steps=args.steps + WARMUP + 1, device="cpu")
            for round_ in range(args.rounds):
                for ahead in (True, False) if round_ % 2 == 0 else (False, True):
                    seconds, shares[size, ahead] = median_step(config, paths, root / f"run{size}-{round_}-{ahead}", ahead)
                    times[size, ahead].append(seconds)
    for (size, ahead), runs in times.items():
        way = "ahead  " if ahead else "in line"
        print(f"{size:4d} px batch {args.batch_size:2d} {way}: " + " ".join(f"{s:.4f}" for s in runs)
              + f"  median {statistics.median(runs):.4f} s  data_wait_share {shares[size, ahead]:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
