"""Seconds per pix2pix training step and generator images/s at 64, 128 and 256 px.

Reference configuration (U-Net with depth from the size, ngf/ndf 64, batch norm, 70x70
PatchGAN, vanilla GAN + L1, Adam), batch 1, synthetic inputs, data loading excluded.
Prints a table and one JSON line. Medians after warm-up; compare numbers from the same run.

    python benchmarks/train_step.py [--sizes 64,128,256] [--steps 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from pix2pix.config import TrainConfig
from pix2pix.training import Pix2Pix


def median_seconds(function, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(size: int, steps: int, warmup: int, infer_batch: int) -> dict:
    torch.manual_seed(0)
    config = TrainConfig(crop_size=size, load_size=size, device="cpu")
    model = Pix2Pix(config, torch.device("cpu"))
    inputs, targets = torch.rand(2, 1, 3, size, size) * 2 - 1
    step_s = median_seconds(lambda: model.train_step(inputs, targets), steps, warmup)

    generator = model.generator.eval()
    batch = torch.rand(infer_batch, 3, size, size) * 2 - 1

    def infer():
        with torch.inference_mode():
            generator(batch)

    infer_s = median_seconds(infer, steps, 1)
    return {"size": size, "train_step_s": step_s, "infer_img_s": infer_batch / infer_s, "infer_batch": infer_batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--infer-batch", type=int, default=1)
    args = parser.parse_args()
    rows = [measure(int(s), args.steps, args.warmup, args.infer_batch) for s in args.sizes.split(",")]
    print(f"{'size':>6} {'train s/step':>13} {'infer img/s':>12}")
    for row in rows:
        print(f"{row['size']:>6} {row['train_step_s']:>13.3f} {row['infer_img_s']:>12.2f}")
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "results": rows,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
