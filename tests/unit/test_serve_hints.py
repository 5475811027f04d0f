"""The demo server's colour hints (issue 19 item 4), over HTTP to an in-process server: the ``X-Hints`` header
reaches the model where the hints were put, and bad hints are a one-line 400.

The page in headless Chromium, with clicks: tests/integration/test_serve.py.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from pix2pix.apps.serve import Limits
from pix2pix.infer.translate import Translator
from pix2pix.task import Task
from tests.support.demo import Colourless, page_config, serving
from tests.support.hints import HINTED, ShowsHints

LIMITS = Limits(max_hints=3, max_hint_size=8)


@pytest.fixture(scope="module")
def hint_server():
    """A hint model whose output's colour is its hint input: what comes back shows where the hints landed."""
    with serving(Translator(ShowsHints(), HINTED, color_side=32), LIMITS) as url:
        yield url


@pytest.fixture(scope="module")
def plain_server():
    with serving(Translator(Colourless(), Task("AtoB", lab_colorization=True), color_side=32), LIMITS) as url:
        yield url


def grey_png(height: int, width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def post(url: str, body: bytes, hints: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "image/png", **({"X-Hints": hints} if hints is not None else {})}
    request = urllib.request.Request(url + "translate", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def redness(png: bytes) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return rgb[..., 0] - rgb[..., 1]


def test_the_page_says_whether_the_model_takes_hints(hint_server, plain_server):
    assert page_config(hint_server).items() >= {"hints": True, "max_hints": 3, "max_hint_size": 8, "color_side": 32}.items()
    assert page_config(plain_server)["hints"] is False


def test_hints_in_the_header_change_the_output_near_them_and_not_far_away(hint_server):
    """A 40x60 grey upload (the network sees 21x32): a red hint at x 50, y 10 comes back there, in the upload's pixels."""
    status, alone = post(hint_server, grey_png(40, 60))
    assert status == 200 and np.abs(redness(alone)).max() <= 2
    status, hinted = post(hint_server, grey_png(40, 60), json.dumps([{"x": 50, "y": 10, "color": "#ff0000", "size": 6}]))
    assert status == 200
    red = redness(hinted)
    assert red.shape == (40, 60) and red[10, 50] > 60 and red[8:13, 48:53].min() > 30
    assert np.abs(red[20:, :]).max() <= 2 and np.abs(red[:, :35]).max() <= 2
    status, empty = post(hint_server, grey_png(40, 60), "[]")
    assert status == 200 and np.array_equal(redness(empty), redness(alone))


HINT = {"x": 1, "y": 2, "color": "#ff0000"}
BAD_HINTS = {
    "not JSON": ("[{", "X-Hints: not readable JSON"),
    "nested too deeply": ("[" * 50_000, "X-Hints: not readable JSON"),
    "not a list": (json.dumps(HINT), "X-Hints: expected a list of hints"),
    "too many": (json.dumps([HINT] * 4), "X-Hints: 4 hints, at most 3 are allowed"),
    "a colour name": (json.dumps([{**HINT, "color": "red"}]), "X-Hints: hint 1: 'color' must be \"#rrggbb\""),
    "size 0": (json.dumps([{**HINT, "size": 0}]), "X-Hints: hint 1: 'size' must be a whole number from 1 to 8, got 0"),
    "size over the limit": (json.dumps([HINT, {**HINT, "size": 9}]), "X-Hints: hint 2: 'size' must be a whole number from 1 to 8, got 9"),
    "a negative x": (json.dumps([{**HINT, "x": -1}]), "X-Hints: hint 1: 'x' must be a whole number >= 0"),
    "a misspelt key": (json.dumps([{**HINT, "colour": "#ff0000"}]), "X-Hints: hint 1: unknown key 'colour'"),
    "outside the image": (json.dumps([{**HINT, "x": 60}]), "X-Hints: hint 1 at x 60, y 2 is outside the 60x40 image"),
}


@pytest.mark.parametrize("case", BAD_HINTS)
def test_bad_hints_are_a_one_line_400_and_the_server_goes_on(hint_server, case):
    header, message = BAD_HINTS[case]
    status, body = post(hint_server, grey_png(40, 60), header)
    assert status == 400 and json.loads(body)["error"].startswith(message) and "\n" not in json.loads(body)["error"]
    assert post(hint_server, grey_png(40, 60))[0] == 200


def test_hints_sent_to_a_model_without_hints_are_a_400(plain_server):
    status, body = post(plain_server, grey_png(40, 60), json.dumps([HINT]))
    assert (status, json.loads(body)["error"]) == (400, "X-Hints: this model takes no colour hints (it was trained without --hints)")
    assert post(plain_server, grey_png(40, 60), "[]")[0] == 400  # the header itself is the mistake
    assert post(plain_server, grey_png(40, 60))[0] == 200
