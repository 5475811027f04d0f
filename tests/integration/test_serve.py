"""The demo server: its HTTP API, its page in headless Chromium, and a clean stop on signals.

Decoding uploads, in-process: tests/unit/test_upload.py.
"""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from pix2pix.apps.serve import Limits
from pix2pix.data.images import list_images
from pix2pix.infer.translate import Translator
from pix2pix.prep.synthetic import CLASSES, PALETTE
from pix2pix.task import Task
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from tests.support.demo import Colourless, Inverts, page_config, serving, stop_server
from tests.support.devtools import DevTools, launched
from tests.support.hints import HINTED, ShowsHints

MAX_BYTES, MAX_PIXELS = 150_000, 100_000


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_pairs, tiny_config):
    root = tmp_path_factory.mktemp("serve")
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def server(run, start_server):
    process, url = start_server(run, "--max_bytes", str(MAX_BYTES), "--max_pixels", str(MAX_PIXELS), "--eval_mode", "eval")
    yield url
    assert "stopped" in stop_server(process, signal.SIGTERM)


def post(url: str, body: bytes, content_type: str = "image/png", hints: list[dict] | None = None) -> tuple[int, str, bytes]:
    headers = {"Content-Type": content_type, **({"X-Hints": json.dumps(hints)} if hints is not None else {})}
    request = urllib.request.Request(url + "translate", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_page_is_self_contained(server, csp):
    with urllib.request.urlopen(server, timeout=30) as response:
        page = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert csp.directives(policy)["script-src"] == [csp.sha256_source(script) for script in csp.inline_scripts(page)]  # no 'unsafe-inline'
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page), "nothing may load from elsewhere"
    config = page_config(server)
    assert config["max_bytes"] == MAX_BYTES and config["drawing"] and config["crop_size"] == 32 and config["hints"] is False


def test_serve_a_hint_model(tmp_path_factory, make_photos, tiny_config, start_server, server, random_png):
    """`pix2pix serve` with a tiny trained hint model: its page says so, X-Hints changes the translation,
    a hint outside the upload is a 400; hints sent to the model without are a 400 too."""
    root = tmp_path_factory.mktemp("serve-hints")
    train(TrainConfig(lab_colorization=True, hints=True, max_steps=2, **tiny_config), list_images(make_photos(root / "photos", count=2)), root / "run")
    process, url = start_server(root / "run", "--eval_mode", "eval")
    try:
        assert page_config(url)["hints"] is True
        photo = random_png(40, 60)
        alone, hinted = (post(url, photo, hints=hints) for hints in (None, [{"x": 59, "y": 0, "color": "#00ff00", "size": 9}]))
        assert alone[:2] == hinted[:2] == (200, "image/png")
        assert not np.array_equal(np.asarray(Image.open(io.BytesIO(alone[2]))), np.asarray(Image.open(io.BytesIO(hinted[2]))))
        status, _, answer = post(url, photo, hints=[{"x": 60, "y": 0, "color": "#00ff00"}])
        assert (status, json.loads(answer)["error"]) == (400, "X-Hints: hint 1 at x 60, y 0 is outside the 60x40 image")
    finally:
        assert "stopped" in stop_server(process, signal.SIGTERM)
    status, _, answer = post(server, photo, hints=[{"x": 1, "y": 1, "color": "#00ff00"}])
    assert (status, json.loads(answer)["error"]) == (400, "X-Hints: this model takes no colour hints (it was trained without --hints)")


def test_image_in_png_out(server, random_png):
    status, content_type, body = post(server, random_png(40, 60))
    assert (status, content_type) == (200, "image/png")
    output = Image.open(io.BytesIO(body))
    assert output.format == "PNG" and output.size == (60, 40) and output.mode == "RGB"
    assert post(server, random_png(40, 60, fmt="JPEG"), "image/jpeg")[0] == 200


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make_body", "status", "fragment"),
    [
        (lambda random_png: b"hello, this is text", 400, "not an image"),
        (lambda random_png: b"", 400, "empty upload"),
        (lambda random_png: random_png(64, 64)[:2000], 400, "truncated"),
        (lambda random_png: random_png(250, 250, 1), 413, f"the limit is {MAX_BYTES:,} bytes"),  # ~190 kB of noise
        (lambda random_png: encoded(Image.new("RGB", (400, 400)), "PNG"), 413, f"160,000 pixels, the limit is {MAX_PIXELS:,}"),  # a tiny file
        (lambda random_png: encoded(Image.new("RGB", (16, 16)), "ICO"), 415, "ICO images are not accepted"),
    ],
    ids=["text", "empty", "truncated", "too many bytes", "too many pixels", "other type"],
)
def test_rejected_uploads_get_a_status_and_a_message(server, make_body, status, fragment, random_png):
    got, content_type, answer = post(server, make_body(random_png), "text/plain")
    assert (got, content_type) == (status, "application/json")
    assert fragment in json.loads(answer)["error"]


def test_unknown_paths_are_404(server):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(server + "etc/passwd", timeout=30)
    assert error.value.code == 404


def test_sigint_stops_the_server_cleanly(run, random_png, start_server):
    process, url = start_server(run)
    assert post(url, random_png(32, 32))[0] == 200
    assert "stopped" in stop_server(process, signal.SIGINT)
    parts = urlsplit(url)
    with pytest.raises(OSError):
        socket.create_connection((parts.hostname, parts.port), timeout=2)  # the port is closed


@pytest.fixture
def browser(chromium, tmp_path):
    """Headless Chromium with DevTools."""
    with launched(chromium, tmp_path) as devtools:
        yield devtools


def upload(devtools: DevTools, path: Path) -> tuple[str, str]:
    """Choose ``path`` in the page's file input, as a user would; returns (state, message) once settled."""
    devtools.evaluate("document.body.dataset.state = 'ready'")
    root = devtools.call("DOM.getDocument")["root"]["nodeId"]
    node = devtools.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    devtools.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node)
    return settle(devtools)


def settle(devtools: DevTools) -> tuple[str, str]:
    state = devtools.wait_for("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state")
    return state, devtools.evaluate("document.getElementById('message').textContent")


def test_page_in_headless_chromium(server, browser, tmp_path, random_png):
    browser.call("Page.navigate", url=server)
    browser.wait_for("document.readyState === 'complete' && document.body.dataset.state === 'ready'")
    (tmp_path / "photo.png").write_bytes(random_png(48, 72))
    state, message = upload(browser, tmp_path / "photo.png")
    assert state == "done", message
    assert browser.evaluate("[document.getElementById('output-image').naturalWidth, document.getElementById('output-image').naturalHeight]") == [72, 48]
    assert browser.evaluate("document.getElementById('input-image').naturalWidth") == 72

    (tmp_path / "fake.png").write_text("this is not a picture")  # looks like a PNG to the browser, not to the server
    state, message = upload(browser, tmp_path / "fake.png")
    assert state == "error" and message.startswith("fake.png: not an image"), message
    assert not browser.evaluate("document.getElementById('output-image').getAttribute('src')")

    (tmp_path / "notes.txt").write_text("hello")
    state, message = upload(browser, tmp_path / "notes.txt")
    assert (state, message) == ("error", "notes.txt is not an image (text/plain): choose a PNG, JPEG, WebP, BMP, GIF or TIFF file.")

    (tmp_path / "big.png").write_bytes(random_png(250, 250, 1))
    state, message = upload(browser, tmp_path / "big.png")
    assert state == "error" and "the limit is 150 kB" in message, message

    browser.evaluate("document.body.dataset.state = 'ready'; document.getElementById('translate-drawing').click()")
    state, message = settle(browser)
    assert state == "done" and message.startswith("drawing: 256×256"), message


PIXELS = """((id) => {  // an image's (or canvas's) RGBA at its own size, row by row, read back through a canvas
  const element = document.getElementById(id);
  if (element instanceof HTMLCanvasElement) return Array.from(element.getContext('2d').getImageData(0, 0, element.width, element.height).data);
  const canvas = document.createElement('canvas');
  [canvas.width, canvas.height] = [element.naturalWidth, element.naturalHeight];
  const context = canvas.getContext('2d');
  context.drawImage(element, 0, 0);
  return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
})"""


def page_pixels(devtools: DevTools, element_id: str, height: int, width: int) -> np.ndarray:
    """The RGB of the page's image or canvas ``element_id``, at its own size."""
    return np.array(devtools.evaluate(f"{PIXELS}({json.dumps(element_id)})"), dtype=int).reshape(height, width, 4)[..., :3]


def output_pixels(devtools: DevTools, height: int, width: int) -> np.ndarray:
    return page_pixels(devtools, "output-image", height, width)


def click_pixel(devtools: DevTools, x: int, y: int) -> None:
    """A real mouse click on the centre of pixel (x, y) of the input image, wherever and however large the page shows it."""
    left, top, scale = devtools.evaluate(
        "(() => { const image = document.getElementById('input-image'); image.scrollIntoView();"
        " const box = image.getBoundingClientRect(); return [box.left, box.top, box.width / image.naturalWidth]; })()"
    )
    point = {"x": left + (x + 0.5) * scale, "y": top + (y + 0.5) * scale, "button": "left", "clickCount": 1}
    for kind in ("mousePressed", "mouseReleased"):
        devtools.call("Input.dispatchMouseEvent", type=kind, **point)


def test_hints_in_headless_chromium(browser, tmp_path):
    """Two hints clicked on a grey 72x48 upload come back in their colours where they were put, nowhere else;
    removing one takes its colour away. The hint model's output shows its hint input (ShowsHints)."""
    with serving(Translator(ShowsHints(), HINTED, color_side=32), Limits(max_hints=3, max_hint_size=8)) as url:
        browser.call("Page.navigate", url=url)
        browser.wait_for("document.readyState === 'complete' && document.body.dataset.state === 'ready'")
        assert not browser.evaluate("document.getElementById('hint-panel').hidden")
        Image.new("RGB", (72, 48), (128, 128, 128)).save(tmp_path / "grey.png")
        state, message = upload(browser, tmp_path / "grey.png")
        assert (state, message) == ("done", "grey.png with 0 hints: 72×48 translated."), message
        assert browser.evaluate("getComputedStyle(document.getElementById('input-image')).filter") == "none"  # the grey is exact
        before = output_pixels(browser, 48, 72)
        for (x, y), colour, count in (((15, 12), "#ff0000", "1 hint"), ((55, 36), "#00ff00", "2 hints")):
            browser.evaluate(f"document.getElementById('hint-colour').value = '{colour}'")
            click_pixel(browser, x, y)
            state, message = settle(browser)
            assert state == "done" and message.startswith(f"grey.png with {count}:"), message
        entries = browser.evaluate("[...document.querySelectorAll('#hint-list li')].map((item) => item.textContent.trim())")
        assert entries == ["x 15, y 12, #ff0000, 8 px remove", "x 55, y 36, #00ff00, 8 px remove"]  # size: the page's default, capped
        after = output_pixels(browser, 48, 72)
        change = np.abs(after - before).sum(axis=2)
        red = after[..., 0] - after[..., 1]  # green is negative
        assert red[12, 15] > 60 and red[36, 55] < -60
        assert change[:, 30:42].max() <= 6 and change[30:, :5].max() <= 6  # between and away from them: still grey

        browser.evaluate("document.querySelector('#hint-list li button').click()")  # remove the red one
        state, message = settle(browser)
        assert state == "done" and message.startswith("grey.png with 1 hint:"), message
        assert browser.evaluate("document.querySelectorAll('#hint-list li').length") == 1
        removed = output_pixels(browser, 48, 72)
        assert np.abs(removed - before).sum(axis=2)[:24, :30].max() <= 6 and removed[36, 55, 1] - removed[36, 55, 0] > 60


def open_page(devtools: DevTools, url: str) -> None:
    devtools.call("Page.navigate", url=url)
    devtools.wait_for("document.readyState === 'complete' && document.body.dataset.state === 'ready'")


def mouse(devtools: DevTools, kind: str, x: float, y: float) -> None:
    """A real mouse event with the left button (down while moving): the page sees pointer events."""
    devtools.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=0 if kind == "mouseReleased" else 1, clickCount=1)


def box(devtools: DevTools, element_id: str) -> dict:
    """Where the element is drawn (viewport CSS px, scrolled into view first) and its computed image-rendering."""
    return devtools.evaluate(
        f"(() => {{ const element = document.getElementById({json.dumps(element_id)}); element.scrollIntoView({{block: 'center'}});"
        " const box = element.getBoundingClientRect();"
        " return {left: box.left, top: box.top, width: box.width, height: box.height, rendering: getComputedStyle(element).imageRendering}; })()"
    )


def test_facades_palette_in_headless_chromium(browser):
    """A facades model's page draws with the CMP classes: the canvas starts as background, a stroke paints exactly the
    chosen class's colour (no anti-aliased blends), and the drawing goes to the model as drawn (Inverts shows it)."""
    model = Translator(Inverts(), Task("BtoA"), config={"crop_size": 32})
    with serving(model, Limits(), palette="facades") as url:
        open_page(browser, url)
        names = browser.evaluate("[...document.querySelectorAll('#classes button')].map((button) => button.textContent.trim())")
        assert names == list(CLASSES)
        assert browser.evaluate("document.getElementById('free-colour').hidden")
        background, window = PALETTE[0], PALETTE[CLASSES.index("window")]
        assert (page_pixels(browser, "canvas", 32, 32) == background).all()

        browser.evaluate("[...document.querySelectorAll('#classes button')].find((button) => button.textContent.includes('window')).click()")
        assert browser.evaluate("document.querySelector('#classes button[aria-pressed=true]').textContent.trim()") == "window"
        browser.evaluate("const brush = document.getElementById('brush'); brush.value = 4; brush.dispatchEvent(new Event('input'))")
        canvas = box(browser, "canvas")
        scale = canvas["width"] / 32
        at = lambda x, y: (canvas["left"] + (x + 0.5) * scale, canvas["top"] + (y + 0.5) * scale)
        mouse(browser, "mousePressed", *at(6, 10))
        for x in (12, 18, 24):
            mouse(browser, "mouseMoved", *at(x, 10))
        mouse(browser, "mouseReleased", *at(24, 10))
        drawn = page_pixels(browser, "canvas", 32, 32)
        assert (drawn[9:11, 6:25] == window).all()  # the stroke, 4 px wide around row 10
        assert (drawn[20:, :] == background).all() and (drawn[:, 28:] == background).all()
        is_window, is_background = (drawn == window).all(axis=2), (drawn == background).all(axis=2)
        assert (is_window | is_background).all(), "every pixel is a class colour"

        browser.evaluate("document.body.dataset.state = 'ready'; document.getElementById('translate-drawing').click()")
        state, message = settle(browser)
        assert (state, message) == ("done", "drawing: 32×32 translated."), message
        assert np.array_equal(output_pixels(browser, 32, 32), 255 - drawn)
        for element_id in ("input-image", "output-image"):  # a 32 px drawing fills the 320 px frame, crisply
            shown = box(browser, element_id)
            assert (shown["width"], shown["height"], shown["rendering"]) == (320, 320, "pixelated"), (element_id, shown)


def screenshot_row(devtools: DevTools, element_id: str, row_fraction: float) -> np.ndarray:
    """One row of a screenshot across the element, ``row_fraction`` of the way down: RGB per CSS px."""
    shown = box(devtools, element_id)
    scroll_x, scroll_y = devtools.evaluate("[window.scrollX, window.scrollY]")
    clip = {"x": shown["left"] + scroll_x, "y": shown["top"] + scroll_y + round(shown["height"] * row_fraction), "width": shown["width"], "height": 1, "scale": 1}
    data = devtools.call("Page.captureScreenshot", format="png", clip=clip)["data"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), dtype=int)[0]


def test_scaled_images_download_and_before_after_slider_in_headless_chromium(browser, tmp_path):
    """A 32x24 upload to a model that inverts: both images scaled to the 320 px frame keeping their shape, the
    download link holds the PNG the server answered, and the slider shows output left of it and input right,
    cut at an image column, moved by keys and by dragging."""
    colour = (200, 40, 40)
    Image.new("RGB", (32, 24), colour).save(tmp_path / "photo.png")
    with serving(Translator(Inverts(), Task("AtoB")), Limits()) as url:
        open_page(browser, url)
        assert upload(browser, tmp_path / "photo.png") == ("done", "photo.png: 32×24 translated.")
        for element_id in ("input-image", "output-image"):
            shown = box(browser, element_id)
            assert (shown["width"], shown["height"], shown["rendering"]) == (320, 240, "pixelated"), (element_id, shown)

        link = browser.evaluate("(() => { const link = document.getElementById('download');"
                                " return {hidden: link.hidden, name: link.download, href: link.href}; })()")
        assert link["hidden"] is False and link["name"] == "photo-translated.png" and link["href"].startswith("blob:")
        browser.call("Page.setDownloadBehavior", behavior="allow", downloadPath=str(tmp_path / "downloads"))
        browser.evaluate("document.getElementById('download').click()")
        saved, deadline = tmp_path / "downloads" / "photo-translated.png", time.monotonic() + 30
        while not saved.is_file() and time.monotonic() < deadline:  # Chromium renames it into place when complete
            time.sleep(0.1)
        request = urllib.request.Request(url + "translate", data=(tmp_path / "photo.png").read_bytes(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert saved.read_bytes() == response.read()  # the PNG the server answered

        assert browser.evaluate("document.getElementById('compare-panel').hidden") is False
        value = lambda: int(browser.evaluate("document.getElementById('compare-handle').getAttribute('aria-valuenow')"))
        assert value() == 16  # half of 32 columns
        browser.evaluate("document.getElementById('compare-handle').focus()")
        for key, expected in (("ArrowRight", 17), ("ArrowLeft", 16), ("ArrowLeft", 15), ("End", 32), ("Home", 0), ("PageUp", 3)):
            browser.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=key, windowsVirtualKeyCode={"ArrowRight": 39, "ArrowLeft": 37, "End": 35, "Home": 36, "PageUp": 33}[key])
            browser.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=key)
            assert value() == expected, key
        compare = box(browser, "compare")
        assert (compare["width"], compare["height"]) == (320, 240)
        mouse(browser, "mousePressed", compare["left"] + 8 * 10 + 2, compare["top"] + 60)
        assert value() == 8
        mouse(browser, "mouseMoved", compare["left"] + 24 * 10 - 3, compare["top"] + 60)
        mouse(browser, "mouseReleased", compare["left"] + 24 * 10 - 3, compare["top"] + 60)
        assert value() == 24

        inverted = 255 - np.array(colour)
        row = screenshot_row(browser, "compare", 0.2)  # above the handle's grip
        is_output = (np.abs(row - inverted) <= 8).all(axis=1)
        is_input = (np.abs(row - colour) <= 8).all(axis=1)
        # The cut: at column 24 of 32, 10 px a column; the handle (and its focus ring) covers 4 px either side of it.
        assert is_output[: 24 * 10 - 4].all() and is_input[24 * 10 + 4 :].all()
        browser.call("Input.dispatchKeyEvent", type="keyDown", key="Home", code="Home", windowsVirtualKeyCode=36)
        assert value() == 0
        row = screenshot_row(browser, "compare", 0.2)
        assert (np.abs(row[4:] - colour) <= 8).all()  # all input now


def test_colorization_input_is_shown_as_the_grey_the_model_sees_in_headless_chromium(browser, tmp_path, random_png):
    task = Task("AtoB", lab_colorization=True)
    (tmp_path / "photo.png").write_bytes(random_png(24, 40))
    with serving(Translator(Colourless(), task, color_side=32), Limits()) as url:
        open_page(browser, url)
        assert upload(browser, tmp_path / "photo.png") == ("done", "photo.png: 40×24 translated.")
        browser.wait_for("(() => { const image = document.getElementById('input-image'); return image.complete && image.naturalWidth === 40; })()")
        rgb = np.asarray(Image.open(tmp_path / "photo.png").convert("RGB"))
        expected = task.to_rgb(*task.to_tensors(rgb, rgb))[0]
        assert np.array_equal(page_pixels(browser, "input-image", 24, 40), expected)
        assert browser.evaluate("getComputedStyle(document.getElementById('input-image')).filter") == "none"
        assert browser.evaluate("document.getElementById('compare-input').src === document.getElementById('input-image').src")
