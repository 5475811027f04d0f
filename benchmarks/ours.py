"""Our side of the benchmarks' calls, and of the stock-process comparisons (reference.py is theirs).

Run as a command it is our pipeline as users run it: a process that applies
``pix2pix.perf.tune_process()`` before torch is imported, as every stage does, and imports only
what training and inference need (not the harness, pandas or scikit-image, whose memory would
count against our peak RSS):

    python benchmarks/ours.py train_step --size 64 [--repeats 20] [--warmup 2] [--result FILE]
    python benchmarks/ours.py infer [--size 256] [--batch 8] [--repeats 8] [--warmup 2] [--result FILE]

Imported (by run.py), nothing is tuned: torch and the library are imported inside the functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def train_step_call(size: int, inputs, targets) -> Callable[[], object]:
    """One ``Pix2Pix.train_step`` on fixed inputs, of a model made after ``torch.manual_seed(0)``."""
    import torch

    from pix2pix.train.config import TrainConfig
    from pix2pix.train.pix2pix_model import Pix2Pix

    torch.manual_seed(0)
    model = Pix2Pix(TrainConfig(crop_size=size, load_size=size, device="cpu"), torch.device("cpu"))
    return lambda: model.train_step(inputs, targets)


def inference_call(batch) -> Callable[[], None]:
    """Our generator on ``batch`` in eval mode, under ``inference_mode``, prepared as ``evaluate`` prepares it."""
    import torch

    from pix2pix.nn.device import Acceleration
    from pix2pix.nn.networks import build_generator, init_weights
    from pix2pix.train.config import TrainConfig

    size = batch.shape[-1]
    torch.manual_seed(0)
    generator = build_generator(TrainConfig(crop_size=size, load_size=size).architecture())
    init_weights(generator)
    generator = Acceleration(torch.device("cpu")).for_inference(generator.eval())

    def call() -> None:
        with torch.inference_mode():
            generator(batch)

    return call


def main() -> None:
    from pix2pix.perf import tune_process

    tune_process()  # before torch, as `import stages` does in every stage
    from reference import time_and_report  # numpy, PIL and torch: nothing of the reference

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train_step", "infer"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--result", type=Path, help="write the JSON here instead of stdout")
    time_and_report(parser.parse_args(), train_step_call, inference_call)


if __name__ == "__main__":
    main()
