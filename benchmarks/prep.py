"""Images/s of the resize and combine stages against plain single-process PIL loops.

Generates COUNT 512x512 JPEG photos-like images (two folders, A and B), then times
``process_folder`` with 1 and 2 workers and a bare PIL loop doing the same work (open, RGB,
area-resize to 256 / paste A|B, save PNG), twice: with PIL's PNG encoder at its defaults (the
loop a user would write) and with the stages' encoder (``pix2pix.data.images.encode_png``). Against
the first the ratio is what a user gains; against the second, what the pipeline's safety
(format normalisation, EXIF, error handling, atomic output) costs or the pool and the stages'
resize gain. The pixels are the same but for the resize's rounding: the stage takes the exact
2x2 mean, PIL's BOX resize is one level off in a third of the pixels.
Prints a table and one JSON line.

    python benchmarks/prep.py [--count 1000] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.data import images
from pix2pix.prep import imageops

SIZE = 512
TARGET = 256
PLAIN_LOOPS: dict[str, Callable[[Image.Image, Path], object]] = {  # the plain loops, by how they write PNGs
    "default": Image.Image.save,  # what a plain ``image.save("x.png")`` gets: adaptive filters, zlib level 6
    "same_encoder": lambda image, path: path.write_bytes(images.encode_png(image)),  # the stages' encoder
}


def make_jpegs(folder: Path, count: int, seed: int) -> None:
    """Smooth colour fields with fine grain: compresses like a photo, not like noise or flat colour."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((SIZE, SIZE), Image.Resampling.BICUBIC), np.int16)
        grain = rng.integers(-12, 13, (SIZE, SIZE, 1), dtype=np.int16)
        Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8)).save(folder / f"{index:04d}.jpg", quality=90)


def plain_resize(input_dir: Path, output_dir: Path, save) -> None:
    output_dir.mkdir()
    for path in sorted(input_dir.iterdir()):
        with Image.open(path) as image:
            save(image.convert("RGB").resize((TARGET, TARGET), Image.Resampling.BOX), output_dir / f"{path.stem}.png")


def plain_combine(a_dir: Path, b_dir: Path, output_dir: Path, save) -> None:
    output_dir.mkdir()
    for path in sorted(a_dir.iterdir()):
        with Image.open(path) as a, Image.open(b_dir / path.name) as b:
            pair = Image.new("RGB", (a.width * 2, a.height))
            pair.paste(a.convert("RGB"), (0, 0))
            pair.paste(b.convert("RGB"), (a.width, 0))
            save(pair, output_dir / f"{path.stem}.png")


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pix2pix-prep-bench-") as tmp:
        root = Path(tmp)
        generate_s = timed(lambda: (make_jpegs(root / "a", args.count, 0), make_jpegs(root / "b", args.count, 1)))
        cases = {
            "resize": (
                functools.partial(imageops.resize, size=TARGET),
                imageops.folder_jobs(root / "a"),
                lambda out, save: plain_resize(root / "a", out, save),
            ),
            "combine": (
                imageops.combine,
                imageops.paired_jobs(root / "a", root / "b"),
                lambda out, save: plain_combine(root / "a", root / "b", out, save),
            ),
        }
        for name, (operation, jobs, plain) in cases.items():
            plain_s = {}
            for loop, save in PLAIN_LOOPS.items():
                plain_s[loop] = timed(functools.partial(plain, root / f"{name}-plain-{loop}", save))
                rows.append({"op": name, "runner": f"PIL loop, {loop} PNG", "workers": 1, "seconds": plain_s[loop]})
            for count in workers:
                seconds = imageops.process_folder(operation, jobs, root / f"{name}-{count}", workers=count).seconds
                rows.append({"op": name, "runner": "process_folder", "workers": count, "seconds": seconds})
            for row in rows:
                if row["op"] == name:
                    row["images_per_s"] = args.count / row["seconds"]
                    row["vs_plain_default"] = plain_s["default"] / row["seconds"]
                    row["vs_plain_same_encoder"] = plain_s["same_encoder"] / row["seconds"]
    print(f"{args.count} generated {SIZE}x{SIZE} JPEGs (x2 for combine) in {generate_s:.1f} s; resize to {TARGET}, PNG out")
    print("vs defaults / vs same enc.: times as fast as the PIL loop with PIL's default PNG encoder / with the stages' one")
    print(f"{'op':<8} {'runner':<26} {'workers':>7} {'seconds':>8} {'images/s':>9} {'vs defaults':>11} {'vs same enc.':>12}")
    for row in rows:
        print(
            f"{row['op']:<8} {row['runner']:<26} {row['workers']:>7} {row['seconds']:>8.2f} "
            f"{row['images_per_s']:>9.1f} {row['vs_plain_default']:>10.2f}x {row['vs_plain_same_encoder']:>11.2f}x"
        )
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "count": args.count,
        "pillow": Image.__version__, "results": rows,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
