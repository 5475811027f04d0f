"""Evaluation in-process: exact metrics, Lab conversion, any image size, batch statistics in train mode.

The `evaluate` stage on a trained run: tests/integration/test_evaluate_stage.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pix2pix.color import lab_normalized_to_rgb, rgb_to_lab_normalized
from pix2pix.infer.evaluate import pad_to_multiple, run_generator, set_eval_mode
from pix2pix.infer.metrics import image_metrics
from pix2pix.nn.networks import UNetGenerator, init_weights


def test_metrics_of_a_known_pair():
    output = np.full((16, 16, 3), 100, np.uint8)
    target = np.full((16, 16, 3), 110, np.uint8)
    metrics = image_metrics(output, target, colorization=True)
    assert metrics["l1"] == pytest.approx(10 / 255)
    assert metrics["psnr"] == pytest.approx(20 * math.log10(255 / 10))
    mu_x, mu_y, c1 = 100 / 255, 110 / 255, 0.01**2  # flat images: SSIM is the luminance term alone
    assert metrics["ssim"] == pytest.approx((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1))
    assert metrics["ciede2000"] > 0
    same = image_metrics(target, target, colorization=True)
    assert same == {"l1": 0.0, "psnr": 100.0, "ssim": 1.0, "ciede2000": 0.0}


def test_lab_matches_reference_values_and_round_trips():
    # sRGB red / green / blue / white under D65 (standard published values)
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    lab = rgb_to_lab_normalized(rgb)
    lightness = (lab[0, 0] + 1) * 50
    a, b = lab[1, 0] * 110, lab[2, 0] * 110
    expected = [(53.24, 80.09, 67.20), (87.73, -86.18, 83.18), (32.30, 79.19, -107.86), (100.0, 0.0, 0.0)]
    for i, (el, ea, eb) in enumerate(expected):
        assert (lightness[i], a[i], b[i]) == pytest.approx((el, ea, eb), abs=0.02)
    photo = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    lab = rgb_to_lab_normalized(photo)
    back = lab_normalized_to_rgb(lab[0], lab[1:])
    assert np.abs(back.astype(int) - photo).max() <= 1


def test_padding_keeps_any_size():
    generator = UNetGenerator(3, 3, depth=5, ngf=4).eval()
    for height, width in ((37, 53), (5, 90), (32, 32)):
        x = torch.rand(1, 3, height, width) * 2 - 1
        padded, size = pad_to_multiple(x, 32)
        assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0 and size == (height, width)
        assert torch.equal(padded[..., :height, :width], x)
        assert run_generator(generator, x).shape == x.shape


def test_train_mode_batches_keep_each_images_own_statistics():
    torch.manual_seed(0)
    generator = UNetGenerator(depth=5, ngf=8, dropout=0.0)
    init_weights(generator)
    generator.train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    keys = list(generator.state_dict())
    with torch.no_grad():
        alone = torch.cat([generator(image[None]) for image in x])  # plain batch norm, one image at a time
        pooled = generator(x)
        running = {k: v.clone() for k, v in generator.state_dict().items() if "running" in k}
        set_eval_mode(generator, "train")
        batched = generator(x)
    assert torch.allclose(batched, alone, atol=1e-5)
    assert not torch.allclose(pooled, alone, atol=1e-3)  # plain batch norm would mix the images
    state = generator.state_dict()
    assert list(state) == keys and all(torch.equal(state[k], v) for k, v in running.items())
    generator.eval()  # eval mode is still plain batch norm with the running statistics
    with torch.no_grad():
        assert torch.allclose(generator(x[:1]), generator(x)[:1], atol=1e-5)
