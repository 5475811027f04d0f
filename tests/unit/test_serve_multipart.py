"""The demo server takes ``multipart/form-data`` uploads (issue 20 item 5), as ``curl -F file=@x.jpg`` sends them:
the same answer as the raw body, hints in a ``hints`` field, and a bad form is a one-line 400.

Raw uploads and the X-Hints header: tests/unit/test_serve_hints.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from pix2pix.apps.serve import Limits
from pix2pix.infer.translate import Translator
from tests.support.demo import serving
from tests.support.hints import HINTED, ShowsHints

BOUNDARY = "----pix2pixFormBoundary7MA4YWxk"
HINTS = [{"x": 50, "y": 10, "color": "#ff0000", "size": 6}]
MAX_BYTES = 20_000


@pytest.fixture(scope="module")
def hint_server():
    """A hint model whose output shows its hints: a form's hints that get lost would show."""
    with serving(Translator(ShowsHints(), HINTED, color_side=32), Limits(max_bytes=MAX_BYTES, max_hints=3, max_hint_size=8)) as url:
        yield url


def form(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY, closed: bool = True) -> bytes:
    """A multipart/form-data body of (field name, file name or None, contents) parts, as browsers and curl write it."""
    body = b""
    for name, filename, contents in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        kind = "Content-Type: image/png\r\n" if filename is not None else ""
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + contents + b"\r\n"
    return body + (f"--{boundary}--\r\n".encode() if closed else b"")


def post(url: str, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url + "translate", data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def test_a_form_upload_is_answered_as_the_raw_upload(hint_server, random_png):
    photo = random_png(40, 60)
    raw = post(hint_server, photo, "image/png")
    assert raw[0] == 200
    assert post(hint_server, form(("file", "photo.png", photo)), FORM_TYPE) == raw
    assert post(hint_server, form(("image", "any-name.bin", photo)), FORM_TYPE) == raw  # any field name: the part with a file name


def test_hints_in_a_form_field_are_the_hints_of_the_header(hint_server, random_png):
    photo = random_png(40, 60)
    from_header = post(hint_server, photo, "image/png", {"X-Hints": json.dumps(HINTS)})
    alone = post(hint_server, photo, "image/png")
    assert from_header[0] == 200 and from_header != alone  # the hint changed the answer
    assert post(hint_server, form(("hints", None, json.dumps(HINTS).encode()), ("file", "photo.png", photo)), FORM_TYPE) == from_header


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_form_upload(hint_server, random_png, tmp_path):
    """The command of the README: curl writes its own boundary and part headers."""
    (tmp_path / "photo.png").write_bytes(random_png(40, 60))
    command = ["curl", "-sS", "-o", str(tmp_path / "out.png"), "-w", "%{http_code}", "-F", f"file=@{tmp_path / 'photo.png'}",
               "-F", f"hints={json.dumps(HINTS)}", hint_server + "translate"]  # fmt: skip
    assert subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout == "200"
    expected = post(hint_server, random_png(40, 60), "image/png", {"X-Hints": json.dumps(HINTS)})[1]
    assert (tmp_path / "out.png").read_bytes() == expected


PHOTO = b"\x89PNG placeholder"  # a bad form is refused before its file is decoded
BAD_FORMS = {
    "no boundary": ("multipart/form-data", form(("file", "a.png", PHOTO)), "multipart/form-data without a boundary parameter"),
    "another boundary": (FORM_TYPE, form(("file", "a.png", PHOTO), boundary="other"), "bad multipart/form-data: StartBoundaryNotFoundDefect"),
    "not closed": (FORM_TYPE, form(("file", "a.png", PHOTO), closed=False), "bad multipart/form-data: CloseBoundaryNotFoundDefect"),
    "no file": (FORM_TYPE, form(("hints", None, b"[]")), "bad multipart/form-data: 0 file parts, send exactly one image file"),
    "two files": (FORM_TYPE, form(("file", "a.png", PHOTO), ("file", "b.png", PHOTO)), "bad multipart/form-data: 2 file parts"),
    "another field": (FORM_TYPE, form(("file", "a.png", PHOTO), ("size", None, b"5")), "bad multipart/form-data: unexpected field 'size'"),
    "many parts": (FORM_TYPE, form(*[("file", "a.png", PHOTO)] * 100), "bad multipart/form-data: more than 2 parts"),
    "empty file": (FORM_TYPE, form(("file", "a.png", b"")), "empty upload"),
    "not an image": (FORM_TYPE, form(("file", "a.png", b"hello, this is text")), "not an image"),
    "bad hints": (FORM_TYPE, form(("file", "a.png", PHOTO), ("hints", None, b"[{")), "hints: not readable JSON"),
}


@pytest.mark.parametrize("case", BAD_FORMS)
def test_a_bad_form_is_a_one_line_400_and_the_server_goes_on(hint_server, random_png, case):
    content_type, body, message = BAD_FORMS[case]
    status, answer = post(hint_server, body, content_type)
    error = json.loads(answer)["error"]
    assert status == 400 and error.startswith(message) and "\n" not in error, (status, error)
    assert post(hint_server, form(("file", "a.png", random_png(40, 60))), FORM_TYPE)[0] == 200


def test_hints_outside_the_image_name_the_field(hint_server, random_png):
    body = form(("file", "a.png", random_png(40, 60)), ("hints", None, json.dumps([{"x": 60, "y": 0, "color": "#00ff00"}]).encode()))
    status, answer = post(hint_server, body, FORM_TYPE)
    assert (status, json.loads(answer)["error"]) == (400, "hints: hint 1 at x 60, y 0 is outside the 60x40 image")


def test_hints_in_both_the_header_and_the_form_are_refused(hint_server, random_png):
    body = form(("file", "a.png", random_png(40, 60)), ("hints", None, b"[]"))
    status, answer = post(hint_server, body, FORM_TYPE, {"X-Hints": "[]"})
    assert (status, json.loads(answer)["error"]) == (400, "hints in both the X-Hints header and the hints field: send one")


def test_a_form_over_the_byte_limit_is_413_counted_on_the_whole_body(hint_server, random_png):
    photo = random_png(40, 60)
    padding = b"x" * (MAX_BYTES - len(photo))  # the file fits, the body around it does not
    status, answer = post(hint_server, form(("file", "a.png", photo), ("hints", None, padding)), FORM_TYPE)
    assert status == 413 and f"the limit is {MAX_BYTES:,} bytes" in json.loads(answer)["error"]
