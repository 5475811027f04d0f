"""The cGAN's metrics.json is a DVC metrics file, one `dvc metrics show` column per key: the accuracy of
each digit goes to per_digit.json beside it, and the run's report still shows it."""

from __future__ import annotations

import json

import torch

from pix2pix.data.digits import load_data
from pix2pix.train.cgan import ConditionalGAN
from pix2pix.train.config import CGANConfig


def test_metrics_json_holds_the_summary_and_per_digit_json_each_digit(tmp_path, run_cli):
    config = CGANConfig(nz=16, ngf=8, ndf=8, batch_size=32, eval_per_digit=4, grid_columns=2, device="cpu")
    ConditionalGAN(config, torch.device("cpu"), load_data(None), tmp_path).finish()

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"conditioning_accuracy", "classifier_accuracy", "diversity", "samples_per_digit"}
    per_digit = json.loads((tmp_path / "per_digit.json").read_text())
    assert list(per_digit) == [str(digit) for digit in range(10)]
    assert all(value in (0, 0.25, 0.5, 0.75, 1) for value in per_digit.values())  # 4 samples a digit
    assert sum(per_digit.values()) / 10 == metrics["conditioning_accuracy"]

    out = tmp_path / "report"
    result = run_cli("stages.report", "--cgan-run", str(tmp_path), "--output-dir", str(out), "--name", "digits-cgan")
    assert result.returncode == 0, result.stderr
    assert 'id="per-digit"' in (out / "index.html").read_text()
