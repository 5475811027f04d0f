"""The synthetic facades teach something real: a short run beats the best constant guess."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pix2pix.data.images import list_images, read_rgb
from pix2pix.infer.evaluate import evaluate
from pix2pix.infer.load import generator_from_checkpoint
from pix2pix.infer.metrics import image_metrics
from pix2pix.prep.imageops import combine
from pix2pix.prep.synthetic import facade_pair
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train


def write_pairs(folder, indices, size):
    folder.mkdir(parents=True)
    for index in indices:
        labels, photo = facade_pair(seed=0, index=index, size=size)
        combine(photo, labels).save(folder / f"cmp_{index:04d}.png")  # A = photo, B = labels
    return list_images(folder)


def test_labels_to_photo_beats_the_mean_image(tmp_path):
    size = 32
    train_paths = write_pairs(tmp_path / "train", range(40), size)
    val_paths = write_pairs(tmp_path / "val", range(40, 52), size)
    config = TrainConfig(
        direction="BtoA", crop_size=size, load_size=size, flip=False, ngf=16, ndf=16, max_epochs=12, device="cpu"
    )
    train(config, train_paths, tmp_path / "run")
    generator, saved = generator_from_checkpoint(tmp_path / "run")
    means = evaluate(generator, Task(saved["direction"]), val_paths, tmp_path / "results", eval_mode="eval")

    train_photos = np.stack([read_rgb(p)[:, :size] for p in train_paths])
    mean_image = (train_photos.astype(np.float64).mean(axis=0) + 0.5).astype(np.uint8)
    baseline = pd.DataFrame([image_metrics(mean_image, read_rgb(p)[:, :size]) for p in val_paths]).mean()
    assert len(pd.read_csv(tmp_path / "results" / "metrics.csv")) == len(val_paths)
    # Wall, sky and frame colours are drawn per building and cannot be read off the labels, so
    # even a pure-L1 model stays near the mean colour: measured 0.159 vs 0.171 (32 px, 12 or
    # 30 epochs; 0.140 vs 0.150 at the pipeline's 64 px). Structure is what it learns: SSIM.
    assert means["l1"] < 0.96 * baseline["l1"], (means["l1"], baseline["l1"])
    assert means["ssim"] > baseline["ssim"] + 0.1, (means["ssim"], baseline["ssim"])
