"""The comparison page in headless Chromium: images load, the step slider replays training samples, the
before/after viewer follows the pointer and zooms, sorting reorders columns and rows, and 500 rows stay light.

The page's content, escaping and errors: tests/unit/test_compare.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pix2pix.apps.compare import build_comparison, read_run
from tests.support.compare import make_run
from tests.support.devtools import DevTools, launched

TABLE_IMAGES = "[...document.querySelectorAll('table.compare img')]"
LOADED = f"{TABLE_IMAGES}.filter((img) => img.complete && img.naturalWidth > 0).length"


@pytest.fixture
def browser(chromium, tmp_path):
    with launched(chromium, tmp_path, "--window-size=1280,900") as devtools:
        yield devtools


def open_page(browser: DevTools, page) -> None:
    browser.call("Page.navigate", url=page.as_uri())
    browser.wait_for("document.readyState === 'complete' && document.body.dataset.ready === 'yes'")


def choose(browser: DevTools, selector: str, value: str) -> None:
    """Pick ``value`` in a control as a user would: its value set, then its change / input event."""
    browser.evaluate(
        f"(() => {{ const control = document.querySelector({json.dumps(selector)}); control.value = {json.dumps(value)};"
        "control.dispatchEvent(new Event(control.type === 'range' ? 'input' : 'change', { bubbles: true })); })()"
    )


def header(browser: DevTools) -> list[str]:
    return browser.evaluate("[...document.querySelectorAll('#group-0 thead th[data-col]')].map((th) => th.dataset.col)")


def write_samples(run_dir, steps: dict[int, int]) -> None:
    """One flat-coloured sample grid per step: (step, grey level)."""
    (run_dir / "samples").mkdir(parents=True)
    for step, level in steps.items():
        Image.fromarray(np.full((16, 48, 3), level, np.uint8)).save(run_dir / "samples" / f"step_{step:07d}.png")


def test_compare_page_in_headless_chromium(tmp_path, browser, random_png, hostile):
    write_samples(tmp_path / "train_a", {2: 10, 4: 120, 6: 250})
    write_samples(tmp_path / "train_b", {4: 60})
    names = ("img0", "img1", hostile.name)
    runs = [
        read_run(hostile.name, make_run(tmp_path / "a", random_png, l1=0.3, psnr=20.0, names=names), tmp_path / "train_a"),
        read_run("b", make_run(tmp_path / "b", random_png, l1=0.1, psnr=25.0, names=names), tmp_path / "train_b"),
        read_run("c", make_run(tmp_path / "c", random_png, l1=0.2, psnr=30.0, names=names)),
    ]
    page = tmp_path / "site" / "compare.html"
    build_comparison(runs, page, sort_by="l1", title=hostile.title)
    open_page(browser, page)
    assert browser.wait_for(f"{LOADED} === {3 * 5} && {LOADED}")  # 3 rows, 3 runs + target + input
    assert browser.evaluate("document.body.dataset.pwned") is None and browser.evaluate("document.title") == hostile.title

    # the step slider: each run shows its last grid at or before the step
    frames = "[...document.querySelectorAll('.frames figure')].map((f) => { const img = f.querySelector('img.frame');" \
             " return [img.hidden ? null : Number(img.dataset.step), img.complete && img.naturalWidth]; })"
    assert browser.wait_for(f"(() => {{ const f = {frames}; return f.every(([, w]) => w) && f; }})()") == [[6, 48], [4, 48]]
    choose(browser, "#step", "0")  # steps 2, 4, 6
    assert browser.wait_for(f"(() => {{ const f = {frames}; return f[0][1] && f; }})()") == [[2, 48], [None, 48]]  # b: no grid yet
    assert browser.evaluate("document.getElementById('step-label').textContent") == "2"
    choose(browser, "#step", "1")
    assert browser.evaluate(f"{frames}.map(([step]) => step)") == [4, 4]

    # columns: by l1 (lower is better) as built, then by psnr (higher is better); rows by the first run's l1
    assert header(browser) == ["1", "2", "0", "target", "input"]
    choose(browser, "#group-0 .sort-columns", "psnr")
    assert header(browser) == ["2", "1", "0", "target", "input"]
    first_cells = "[...document.querySelectorAll('#group-0 tbody tr')].map((tr) => tr.children[1].dataset.col)"
    assert set(browser.evaluate(first_cells)) == {"2"}  # every row's cells moved with its header
    choose(browser, "#group-0 .sort-rows", "l1:worst")  # make_run: l1 grows with the row, so the last name first
    assert browser.evaluate("[...document.querySelectorAll('#group-0 tbody td.name')].map((td) => td.textContent)") == [hostile.name, "img1", "img0"]

    # the before/after viewer: pixel-aligned at 4x, the split follows a click, the zoom is crisp
    sizes = "['before', 'after'].map((c) => { const img = document.querySelector(`#group-0 img.${c}`); return [img.complete && img.naturalWidth, img.getBoundingClientRect().width]; })"
    assert browser.wait_for(f"(() => {{ const s = {sizes}; return s.every(([w]) => w) && s; }})()") == [[32, 128], [32, 128]]
    box = browser.evaluate(
        "(() => { const frame = document.querySelector('#group-0 .split-frame'); frame.scrollIntoView({block: 'center'});"
        " const r = frame.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()"
    )
    point = {"x": box[0] + box[2] * 0.25, "y": box[1] + box[3] / 2, "button": "left", "clickCount": 1}
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, **point)
    assert browser.evaluate("document.querySelector('#group-0 .viewer-split').value") == "25"
    assert browser.evaluate("document.querySelector('#group-0 img.after').style.clipPath") == "inset(0px 0px 0px 25%)"
    assert browser.evaluate("document.querySelector('#group-0 .divider').style.left") == "25%"
    choose(browser, "#group-0 .viewer-split", "70")
    assert browser.evaluate("document.querySelector('#group-0 img.after').style.clipPath") == "inset(0px 0px 0px 70%)"
    choose(browser, "#group-0 .viewer-zoom", "8")
    assert browser.evaluate(sizes) == [[32, 256], [32, 256]]
    assert browser.evaluate("getComputedStyle(document.querySelector('#group-0 img.after')).imageRendering") == "pixelated"
    choose(browser, "#group-0 .viewer-after", "input")
    assert browser.wait_for("document.querySelector('#group-0 img.after').src").endswith("-inputs.png")


def test_500_rows_load_lazily_and_stay_responsive(tmp_path, browser, random_png):
    names = tuple(f"img{index:03d}" for index in range(500))
    runs = [read_run(name, make_run(tmp_path / name, random_png, l1=l1, psnr=psnr, names=names)) for name, l1, psnr in (("a", 0.3, 20.0), ("b", 0.1, 25.0))]
    page = tmp_path / "site" / "compare.html"
    build_comparison(runs, page)
    open_page(browser, page)
    assert browser.evaluate(f"{TABLE_IMAGES}.length") == 500 * 4
    first_row = browser.wait_for(f"{TABLE_IMAGES}.slice(0, 4).every((img) => img.complete && img.naturalWidth > 0)")
    assert first_row
    assert 4 <= browser.evaluate(LOADED) < 500  # the rows in view and a margin, not the whole table
    assert browser.evaluate(f"{TABLE_IMAGES}.slice(-4).some((img) => img.complete && img.naturalWidth > 0)") is False
    choose(browser, "#group-0 .sort-columns", "l1")
    assert header(browser) == ["1", "0", "target", "input"]
    choose(browser, "#group-0 .sort-rows", "psnr:best")  # make_run: psnr falls row by row, so img000 first
    assert browser.evaluate("document.querySelector('#group-0 tbody td.name').textContent") == "img000"
    choose(browser, "#group-0 .sort-rows", "psnr:worst")
    assert browser.evaluate("document.querySelector('#group-0 tbody td.name').textContent") == "img499"
    choose(browser, "#group-0 .viewer-split", "30")
    assert browser.evaluate("document.querySelector('#group-0 img.after').style.clipPath") == "inset(0px 0px 0px 30%)"
    browser.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the last rows load once in view
    assert browser.wait_for(f"{TABLE_IMAGES}.slice(-4).every((img) => img.complete && img.naturalWidth > 0)")
