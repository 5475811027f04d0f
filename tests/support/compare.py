"""Results folders as `pix2pix evaluate` writes them, by hand, for the comparison page's tests, and the data a page carries."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pix2pix.infer.summary import write_summary


def make_run(
    folder: Path, random_png, l1: float = 0.2, psnr: float = 20.0, names=("img0", "img1", "img2"), input_seed: int = 0, size: int = 32,
    output_seed: int = 100,
) -> Path:
    """A results folder: images/NAME-{inputs,outputs,targets}.png, metrics.csv (per-image l1 and psnr around the
    means given), metrics.json and evaluation.json with directions and an identity baseline. Inputs come from ``input_seed``,
    outputs from ``output_seed``."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for index, name in enumerate(names):
        for kind, seed in (("inputs", input_seed + index), ("outputs", output_seed + index), ("targets", 200 + index)):
            (folder / "images" / f"{name}-{kind}.png").write_bytes(random_png(size, size, seed))
        rows.append(f"{name},{l1 + index / 100:.6f},{psnr - index:.6f}\n")
    (folder / "metrics.csv").write_text("name,l1,psnr\n" + "".join(rows), encoding="utf-8")
    summary = {
        "l1": l1, "psnr": psnr, "count": len(names), "eval_mode": "train",
        "directions": {"l1": "lower", "psnr": "higher"},
        "baselines": {"identity": {"l1": 0.5, "psnr": 10.0}},
    }  # fmt: skip
    write_summary(folder, summary)
    return folder


def page_data(html: str) -> dict:
    """The JSON a comparison page carries for its script: groups, steps, frames."""
    return json.loads(re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', html, re.DOTALL).group(1))
