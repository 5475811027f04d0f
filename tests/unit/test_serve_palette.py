"""`pix2pix serve --palette auto` (the default): the demo page draws with the label palette that training
recorded as the model's input (`pix2pix train --labels`), unless --palette says otherwise.

The palette's colours on the page: tests/unit/test_serve_views.py; the page in Chromium: tests/integration/test_serve.py.
"""

from __future__ import annotations

import signal

import pytest
import yaml

from pix2pix import checkpoint as ckpt
from pix2pix.apps.serve import Limits, demo_palette
from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.infer.translate import Translator
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from tests.support.demo import page_config, serving, stop_server


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory, make_pairs, tiny_config):
    """A tiny facades-like run whose input (B, so BtoA) is declared a facades label map."""
    root = tmp_path_factory.mktemp("labels")
    config = TrainConfig(direction="BtoA", labels="facades", max_steps=1, **tiny_config)
    train(config, list_images(make_pairs(root / "pairs", count=2)), root / "run")
    return root / "run"


@pytest.mark.parametrize(
    ("args", "palette"),
    [([], "facades"), (["--palette", "none"], None)],
    ids=["auto", "none-overrides"],
)
def test_serve_draws_with_the_recorded_labels_unless_told_otherwise(labels_run, start_server, args, palette):
    process, url = start_server(labels_run, *args)
    try:
        config = page_config(url)
    finally:
        stop_server(process, signal.SIGTERM)
    assert (config["palette"] or {}).get("name") == palette
    assert config["canvas_size"] == (32 if palette else 256)  # labels are drawn at the training crop's size


def test_a_checkpoint_saved_before_labels_existed_draws_freely(labels_run, tmp_path):
    payload = ckpt.load(labels_run / ckpt.GENERATOR_NAME)
    del payload["config"]["labels"]
    ckpt.save(payload, tmp_path / ckpt.GENERATOR_NAME)
    translator = Translator.from_checkpoint(tmp_path / ckpt.GENERATOR_NAME)
    assert demo_palette("auto", translator.config) is None
    assert demo_palette("facades", translator.config) == "facades"  # said explicitly, as before
    with serving(translator, Limits(), palette=demo_palette("auto", translator.config)) as url:
        assert page_config(url)["palette"] is None


def test_a_recorded_palette_this_version_does_not_know_is_one_clear_error():
    with pytest.raises(UserError, match="the checkpoint records labels 'cityscapes': not a known palette"):
        demo_palette("auto", {"labels": "cityscapes"})


def test_labels_with_colorization_are_refused_on_the_command_line(tmp_path, pairs, run_cli, assert_user_error):
    result = run_cli("stages.cli", "train", "-i", str(pairs), "-o", str(tmp_path / "run"), "--labels", "facades", "--lab-colorization")
    assert_user_error(result, "labels facades and lab_colorization exclude each other")
    assert not (tmp_path / "run").exists()


def test_labels_with_colorization_are_refused_in_params_yaml(tmp_path, repo_root, run_cli, assert_user_error):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["experiments"]["facades"]["train"].update(labels="facades", lab_colorization=True)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = run_cli("stages.train", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--params", str(path), "--section", "experiments.facades.train")
    assert_user_error(result, "experiments.facades.train: labels facades and lab_colorization exclude each other")
