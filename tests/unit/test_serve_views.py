"""What the demo page is told to show (issue 20 item 5): the grey a colorization model sees (``POST /grey``),
and the label palette a facades model is drawn with.

The page itself, in headless Chromium: tests/integration/test_serve.py.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from pix2pix.apps.serve import DemoModel, Limits
from pix2pix.errors import UserError
from pix2pix.infer.translate import Translator
from pix2pix.prep.synthetic import CLASSES, PALETTE
from pix2pix.task import Task
from tests.support.demo import Colourless, Inverts, page_config, serving
from tests.support.hints import HINTED, ShowsHints


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.mark.parametrize("task", [Task("AtoB", lab_colorization=True), HINTED], ids=["colorization", "hints"])
def test_grey_is_the_input_the_colorization_model_sees(task, random_png):
    """The grey of a colour upload is the L channel as ``translate`` shows a colorization input, and it is what a
    model that adds no colour answers: the page shows exactly what the model sees."""
    generator = ShowsHints() if task.hints else Colourless()
    with serving(Translator(generator, task, color_side=64), Limits()) as url:
        assert page_config(url)["grey_input"] is True
        photo = random_png(24, 40)
        status, grey = post(url + "grey", photo)
        assert status == 200
        rgb = pixels(photo)
        expected = task.to_rgb(task.to_tensors(rgb, rgb)[0], task.to_tensors(rgb, rgb)[1])[0]
        assert np.array_equal(pixels(grey), expected)
        assert np.ptp(pixels(grey).astype(int), axis=2).max() <= 1  # neutral grey, not the upload's colours
        assert np.array_equal(pixels(grey), pixels(post(url + "translate", photo)[1]))  # no colour added: the same grey
        status, answer = post(url + "grey", b"hello, this is text")
        assert status == 400 and b"not an image" in answer


def test_a_model_that_sees_colour_has_no_grey(random_png):
    with serving(Translator(Inverts(), Task("BtoA")), Limits()) as url:
        assert page_config(url)["grey_input"] is False
        status, answer = post(url + "grey", random_png(8, 8))
        assert status == 404 and b"this model sees the upload's colours" in answer


def test_the_facades_palette_is_the_training_data_colours_background_first():
    with serving(Translator(Inverts(), Task("BtoA"), config={"crop_size": 64}), Limits(), palette="facades") as url:
        config = page_config(url)
    classes = config["palette"]["classes"]
    assert config["palette"]["name"] == "facades" and [entry["name"] for entry in classes] == list(CLASSES)
    assert [entry["color"] for entry in classes] == ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in PALETTE.tolist()]
    assert classes[0] == {"name": "background", "color": "#000080"}  # what the canvas is filled with
    assert config["canvas_size"] == 64  # labels are drawn at the size the model learnt them
    with serving(Translator(Inverts(), Task("BtoA"), config={"crop_size": 64}), Limits()) as url:
        assert page_config(url)["palette"] is None and page_config(url)["canvas_size"] == 256


def test_a_palette_for_a_colorization_model_is_refused():
    with pytest.raises(UserError, match="palette facades: this model colorizes photos"):
        DemoModel(Translator(Colourless(), Task("AtoB", lab_colorization=True)), Limits(), max_queued=1, palette="facades")
