"""The generator as an MLflow pyfunc model (pix2pix.apps.mlflow_model), `train --register` and `pix2pix promote`,
against a sqlite MLflow store in a temporary folder."""

from __future__ import annotations

import base64
import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException
from PIL import Image

from pix2pix.apps.mlflow_model import log_translator_model
from pix2pix.data.hints import Hint
from pix2pix.data.images import list_images, read_rgb
from pix2pix.infer.translate import Translator
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from stages.promote import app as promote_app
from stages.train import app as train_app

HINTS = [{"x": 3, "y": 4, "color": "#ff2000", "size": 5}]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite MLflow store of its own, as MLFLOW_TRACKING_URI (which the stages read) and this process's tracking URI."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_pairs, make_photos, tiny_config):
    """A tiny A|B model, a tiny hint colorization model, and their inputs."""
    root = tmp_path_factory.mktemp("runs")
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), root / "pix2pix")
    train(TrainConfig(lab_colorization=True, hints=True, max_steps=3, **tiny_config), list_images(make_photos(root / "photos", count=2)), root / "hinted")
    return root


def logged(store, run_dir, experiment: str = "models", metrics: dict | None = None):
    """The run folder's generator logged as an MLflow model in a new run; (pyfunc model loaded back, the run's id)."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        if metrics:
            mlflow.log_metrics(metrics)
        info = log_translator_model(run_dir / "generator.pt")
    return mlflow.pyfunc.load_model(info.model_uri), run.info.run_id


@pytest.fixture(scope="module")
def pix2pix_model(store, runs):
    return logged(store, runs / "pix2pix")[0]


@pytest.fixture(scope="module")
def hint_model(store, runs):
    return logged(store, runs / "hinted")[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decoded(frame: pd.DataFrame) -> list[np.ndarray]:
    return [read_rgb(base64.b64decode(value)) for value in frame["image"]]


def expected(run_dir, rgb: np.ndarray, hints=None) -> np.ndarray:
    torch.manual_seed(0)
    return Translator.from_checkpoint(run_dir / "generator.pt").translate([rgb], hints)[0]


def test_the_logged_model_translates_base64_png_and_jpeg_as_the_translator_does(pix2pix_model, runs, random_png):
    model = pix2pix_model
    assert model.metadata.get_input_schema().input_names() == ["image"]
    assert model.metadata.get_output_schema().input_names() == ["image"]
    png, jpeg = random_png(32, 32, seed=1), random_png(24, 40, seed=2, fmt="JPEG")
    outputs = decoded(model.predict(pd.DataFrame({"image": [b64(png), b64(jpeg)]})))
    for data, output in zip((png, jpeg), outputs):
        rgb = read_rgb(data)
        assert output.shape == rgb.shape
        np.testing.assert_array_equal(output, expected(runs / "pix2pix", rgb))


def test_the_hints_column_steers_a_hint_model_and_may_be_left_out(hint_model, runs):
    model = hint_model
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == ["image", "hints"] and not schema.inputs[1].required
    photo = (runs / "photos").glob("*.png").__next__().read_bytes()
    rgb = read_rgb(photo)
    alone, hinted = decoded(model.predict(pd.DataFrame({"image": [b64(photo)] * 2, "hints": [None, json.dumps(HINTS)]})))
    np.testing.assert_array_equal(alone, expected(runs / "hinted", rgb))
    hint = Hint(3, 4, (255, 32, 0), 5)
    np.testing.assert_array_equal(hinted, expected(runs / "hinted", rgb, [[hint]]))
    assert not np.array_equal(alone, hinted)
    (without,) = decoded(model.predict(pd.DataFrame({"image": [b64(photo)]})))
    np.testing.assert_array_equal(without, alone)


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"image": "not base64!"}, "row 1: image: not valid base64"),
        ({"image": b64(b"plain text")}, "row 1: image: not an image"),
        ({"image": "GIF", "gif": True}, "row 1: image: GIF images are not accepted"),
        ({"hints": "[{"}, "row 1: hints: not a readable JSON list of hints"),
        ({"hints": json.dumps([{"x": 1, "y": 1, "color": "red"}])}, "row 1: hints: hint 1: 'color' must be \"#rrggbb\""),
        ({"hints": json.dumps([{"x": 99, "y": 1, "color": "#ff0000"}])}, "row 1: hints: hint 1 at x 99, y 1 is outside the 40x40 image"),
    ],
)
def test_bad_images_and_hints_are_one_line_errors_naming_the_row(hint_model, runs, row, fragment):
    photo = (runs / "photos").glob("*.png").__next__()
    image = row.get("image", b64(photo.read_bytes()))
    if row.get("gif"):
        buffer = io.BytesIO()
        Image.open(photo).save(buffer, format="GIF")
        image = b64(buffer.getvalue())
    frame = pd.DataFrame({"image": [image], **({"hints": [row["hints"]]} if "hints" in row else {})})
    with pytest.raises((MlflowException, ValueError)) as raised:
        hint_model.predict(frame)
    message = str(raised.value.message if isinstance(raised.value, MlflowException) else raised.value)
    assert fragment in message and "\n" not in message.strip(), message


def test_hints_for_a_model_without_hints_are_refused(pix2pix_model, random_png):
    # the signature has no hints column: MLflow drops it, so the library's check is called directly
    with pytest.raises(ValueError, match="row 1: hints: this model takes no colour hints"):
        pix2pix_model.unwrap_python_model().predict(None, pd.DataFrame({"image": [b64(random_png(32, 32))], "hints": [json.dumps(HINTS)]}))


def test_register_needs_tracking_and_a_name_the_registry_takes(invoke, assert_user_error, tmp_path):
    missing = tmp_path / "no-images"  # never read: the option is refused first
    assert_user_error(invoke(train_app, "-i", str(missing), "-o", str(tmp_path / "run"), "--register", "facades"), "--register needs --mlflow-experiment")
    bad = invoke(train_app, "-i", str(missing), "-o", str(tmp_path / "run"), "--mlflow-experiment", "x", "--register", "a/b")
    assert_user_error(bad, "--register", "cannot contain '/'")
    assert not (tmp_path / "run").exists()


def test_promote_gives_the_best_run_by_the_metrics_direction_the_alias(store, runs, invoke):
    _, worse = logged(store, runs / "pix2pix", "sweep", {"val_l1": 0.5, "val_psnr": 20.0})
    _, better = logged(store, runs / "pix2pix", "sweep", {"val_l1": 0.2, "val_psnr": 10.0})
    client = mlflow.MlflowClient()
    for metric, best in (("val_l1", better), ("val_psnr", worse), ("val_l1", better)):
        result = invoke(promote_app, "--experiment", "sweep", "--metric", metric, "--register", "facades")
        assert result.returncode == 0, result.stderr
        assert client.get_model_version_by_alias("facades", "champion").run_id == best
    assert len(client.search_model_versions("name = 'facades'")) == 2  # promoting a run again reuses its version


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--experiment", "sweep", "--metric", "G_L1"), ("--metric 'G_L1': not a validation or evaluation metric",)),
        (("--experiment", "nothing-here"), ("--experiment 'nothing-here': no such experiment",)),
        (("--experiment", "sweep", "--metric", "eval_hints_10_psnr"), ("no finished run has the metric eval_hints_10_psnr",)),
        (("--experiment", "sweep", "--register", "a:b"), ("--register", "cannot contain")),
    ],
)
def test_promote_refuses_in_one_line(store, invoke, assert_user_error, args, fragments):
    mlflow.set_experiment("sweep")
    assert_user_error(invoke(promote_app, "--register", "facades", *args), *fragments)
