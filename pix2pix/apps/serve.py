"""A local demo page: upload an image (or draw one), see the model's translation next to it.

Like the original project's browser demo, but the model runs in this process, behind the
standard library's ``ThreadingHTTPServer``. The page (``templates/demo.html.j2``) is
self-contained: its CSS and JS are inlined, nothing is fetched from elsewhere, and its
Content-Security-Policy lets only its own script run. Uploads are decoded as image files are
(``pix2pix.data.images.read_rgb``). There is no authentication, hence the 127.0.0.1 default.

- ``GET /``: the page. Its JSON config (``DemoModel.info``) says what the model takes: colour hints
  (``"hints"``), a grey view (``"grey_input"``), a label palette to draw with (``"palette"``).
- ``POST /translate``: the upload is an image file, either the whole body (any Content-Type but
  multipart) or the one file part of a ``multipart/form-data`` body (``curl -F file=@photo.jpg``,
  any field name; a form field ``hints`` may hold the hints). Content-Length counts the whole body
  either way, checked before anything is read. The answer is the translation as PNG, or JSON
  ``{"error": message}`` with 400 (not a readable image, bad hints, or a bad form), 411 (no
  Content-Length), 413 (too many bytes or pixels), 415 (an image type that is not accepted) or 503
  with Retry-After (``max_queued`` uploads are already being decoded, waiting or translated).
  A hint model's colour hints come in the ``X-Hints`` header or the form's ``hints`` field (not
  both): the JSON list ``translate --hints`` reads, ``[{"x": int, "y": int, "color": "#rrggbb",
  "size": px}]`` in the upload's own pixels (size optional, 1 to ``Limits.max_hint_size``; at most
  ``Limits.max_hints`` hints). Hints sent to a model without hints are a 400, as is any bad hint.
- ``POST /grey`` (colorization models that see L, ``"grey_input"``): the same uploads, answered with
  the grey image the model sees (its L channel, as ``translate`` shows inputs), with the same
  statuses; hints are not read. Other models answer 404.

A burst of uploads is answered, never reset: the kernel queues up to ``DemoServer.request_queue_size``
connections until they are accepted, and each accepted upload beyond the queue is answered 503 at once.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import json
import signal
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from pix2pix.apps.pages import content_security_policy, packaged_text, render
from pix2pix.color import gray_rgb
from pix2pix.data.hints import Hint, check_hints_fit, parse_hints
from pix2pix.data.images import (
    ImageFormatNotAccepted,
    ImageTooLarge,
    encode_png,
    read_rgb,
)
from pix2pix.errors import UserError
from pix2pix.infer.translate import NO_HINTS, Translator
from pix2pix.prep.synthetic import CLASSES, PALETTE

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
# A too-large body is read and dropped up to this size so the client sees the 413 instead of a reset.
DRAIN_LIMIT = 64 * 2**20
# What a 503 tells the client to wait: a few translations of a typical upload.
RETRY_AFTER_S = 5
HINTS_HEADER = "X-Hints"
HINTS_FIELD = "hints"  # the form field that may carry the same JSON as the header
FORM_TYPE = "multipart/form-data"
# A form holds the file and, optionally, hints: more delimiters than that are refused before parsing.
MAX_FORM_PARTS = 2
# Label palettes to draw with, first class the background: (name, RGB) as the training data colours them.
PALETTES = {"facades": tuple(zip(CLASSES, map(tuple, PALETTE.tolist())))}


def demo_palette(choice: str, config: dict) -> str | None:
    """The palette the page draws with: ``choice`` (a name of ``PALETTES`` or "none"), or for "auto" the
    checkpoint's ``labels`` option, the input's palette recorded in training (older and imported checkpoints: none)."""
    name = config.get("labels", "none") if choice == "auto" else choice
    if name != "none" and name not in PALETTES:
        source = "the checkpoint records labels" if choice == "auto" else "palette"
        raise UserError(f"{source} {name!r}: not a known palette (none, {', '.join(PALETTES)})")
    return None if name == "none" else name


@dataclass(frozen=True)
class Limits:
    """What one upload may be: checked on the bytes, the hints and the image header before decoding."""

    max_bytes: int = 10_000_000
    max_pixels: int = 2048 * 2048
    max_hints: int = 100  # twice evaluate's longest hint curve
    max_hint_size: int = 128  # image pixels: training's largest square (9 px) at 2048 px shrunk to a 256 px crop is 72


class UploadError(Exception):
    """A rejected upload: the HTTP status and a message for the page."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def form_boundary(content_type: str | None) -> bytes | None:
    """A ``multipart/form-data`` Content-Type -> its boundary; ``None`` for any other type (the body is the file)."""
    header = email.message.Message()
    header["Content-Type"] = content_type or "application/octet-stream"
    if header.get_content_type() != FORM_TYPE:
        return None
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise UploadError(HTTPStatus.BAD_REQUEST, f"{FORM_TYPE} without a boundary parameter in its Content-Type")
    return boundary.encode("latin-1", "replace")


def read_form(body: bytes, boundary: bytes) -> tuple[bytes, str | None]:
    """A ``multipart/form-data`` body -> (its one file part's bytes, its ``hints`` field or ``None``).

    Parsed by the standard library's email parser; the parts are counted first, so a body of many
    tiny parts is refused before the parser builds them.
    """
    if body.count(b"--" + boundary) > MAX_FORM_PARTS + 1:
        raise UploadError(HTTPStatus.BAD_REQUEST, f"bad {FORM_TYPE}: more than {MAX_FORM_PARTS} parts (a file and {HINTS_FIELD})")
    head = b'Content-Type: multipart/form-data; boundary="' + boundary + b'"\r\n\r\n'
    form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    problems = [*form.defects, *(defect for part in form.iter_parts() for defect in part.defects)]
    if problems or not form.is_multipart():
        reason = type(problems[0]).__name__ if problems else "no parts"
        raise UploadError(HTTPStatus.BAD_REQUEST, f"bad {FORM_TYPE}: {reason} (boundary {boundary.decode('latin-1')!r})")
    files, hints = [], None
    for part in form.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            files.append(part.get_payload(decode=True) or b"")
        elif name == HINTS_FIELD and hints is None:
            hints = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        else:
            raise UploadError(HTTPStatus.BAD_REQUEST, f"bad {FORM_TYPE}: unexpected field {name!r}; send one file and, optionally, {HINTS_FIELD}")
    if len(files) != 1:
        raise UploadError(HTTPStatus.BAD_REQUEST, f"bad {FORM_TYPE}: {len(files)} file parts, send exactly one image file")
    return files[0], hints


def decode_upload(data: bytes, limits: Limits) -> np.ndarray:
    """An uploaded file -> ``(H, W, 3)`` uint8 RGB, decoded as image files are, or an ``UploadError``."""
    if not data:
        raise UploadError(HTTPStatus.BAD_REQUEST, "empty upload: choose an image file")
    try:
        return read_rgb(data, formats=ACCEPTED_FORMATS, max_pixels=limits.max_pixels)
    except ImageTooLarge as exc:
        raise UploadError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc)) from None
    except ImageFormatNotAccepted as exc:
        raise UploadError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    except UserError as exc:
        raise UploadError(HTTPStatus.BAD_REQUEST, str(exc)) from None


class DemoModel:
    """The translator behind the page; one translation at a time (the model is not thread-safe).

    At most ``max_queued`` uploads are held (read, decoded, waiting or translating), which bounds
    the memory a burst of uploads takes; the handler answers the others 503 at once, their bodies dropped.
    """

    def __init__(self, translator: Translator, limits: Limits, max_queued: int, palette: str | None = None):
        """``palette``: a name of ``PALETTES`` for a model whose input is a label map (the page then draws
        with its classes, at the training crop's size), or ``None``."""
        self.translator, self.limits, self.max_queued = translator, limits, max_queued
        self.queue_places = threading.BoundedSemaphore(max_queued)
        task, crop_size = translator.task, translator.config.get("crop_size", 256)
        if palette is not None and task.lab_colorization:
            raise UserError(f"palette {palette}: this model colorizes photos; a label palette is for a model whose input is a label map")
        classes = [{"name": name, "color": "#{:02x}{:02x}{:02x}".format(*rgb)} for name, rgb in PALETTES[palette]] if palette else None
        self.info = {
            "direction": task.direction,
            "lab_colorization": task.lab_colorization,
            "crop_size": crop_size,
            "eval_mode": "train" if translator.generator.training else "eval",
            "drawing": not task.lab_colorization,  # label maps and edges can be drawn; a gray photo cannot
            # Labels are drawn at the scale the model learnt them; free drawings get room for detail.
            "canvas_size": crop_size if classes else max(256, crop_size),
            "palette": {"name": palette, "classes": classes} if classes else None,
            "grey_input": self.sees_grey,
            "max_bytes": limits.max_bytes,
            "max_pixels": limits.max_pixels,
            "hints": task.hints,
            "max_hints": limits.max_hints,
            "max_hint_size": limits.max_hint_size,
            "color_side": translator.color_side,  # the network's frame: the page sizes new hints to it
        }
        self._lock = threading.Lock()
        self.page = render("demo.html.j2", config=self.info).encode("utf-8")
        # Uploads and translations are shown as blob: URLs, the icon is a data: URL; the script POSTs to /translate.
        self.policy = content_security_policy(
            scripts=[packaged_text("demo.js")], images=("'self'", "blob:", "data:"), connect=("'self'",)
        )

    @property
    def sees_grey(self) -> bool:
        """Whether the model's input is the L channel alone (``/grey`` shows it)."""
        task = self.translator.task
        return task.lab_colorization and task.direction == "AtoB"

    def read_hints(self, text: str | None, source: str = HINTS_HEADER) -> list[Hint] | None:
        """Hints JSON (the ``X-Hints`` header, or the form field named by ``source``) -> a hint model's hints
        (none: ``[]``), ``None`` for a model without; checked apart from the upload's size (``translate_png``)."""
        if not self.translator.task.hints:
            if text is None:
                return None
            raise UploadError(HTTPStatus.BAD_REQUEST, f"{source}: this model {NO_HINTS}")
        if text is None:
            return []
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise UploadError(HTTPStatus.BAD_REQUEST, f"{source}: not readable JSON ({exc})") from None
        try:
            return parse_hints(value, source, self.limits.max_hints, self.limits.max_hint_size)
        except UserError as exc:
            raise UploadError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    def translate_png(self, data: bytes, hints: list[Hint] | None = None, hints_source: str = HINTS_HEADER) -> bytes:
        """An upload -> its translation as PNG; a hint model's ``hints`` (from ``read_hints``) must fall inside it."""
        rgb = decode_upload(data, self.limits)
        try:
            check_hints_fit(hints or [], rgb.shape[:2], hints_source)
        except UserError as exc:
            raise UploadError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        with self._lock:
            output = self.translator.translate([rgb], None if hints is None else [hints])[0]
        return encode_png(output)

    def grey_png(self, data: bytes) -> bytes:
        """An upload -> the grey image a colorization model sees: its network input's L, shown as ``Task.to_rgb`` shows it."""
        lightness = self.translator.network_input(decode_upload(data, self.limits))[0].numpy()
        return encode_png(gray_rgb(lightness))


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "pix2pix-serve"
    timeout = 60  # a stalled upload frees its thread
    model: DemoModel  # set on the subclass that make_server builds

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            return self._error(HTTPStatus.NOT_FOUND, f"no page {self.path}; the demo is at /")
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.model.page)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/translate", "/grey"):
            return self._error(HTTPStatus.NOT_FOUND, f"nothing to POST to at {self.path}; use /translate")
        if path == "/grey" and not self.model.sees_grey:
            return self._error(HTTPStatus.NOT_FOUND, "no /grey: this model sees the upload's colours, not its grey; use /translate")
        header = self.headers.get("Content-Length")
        if header is None or not header.strip().isdigit():
            self.close_connection = True  # the body's end is unknown
            return self._error(HTTPStatus.LENGTH_REQUIRED, "the upload needs a valid Content-Length header")
        length = int(header)
        limit = self.model.limits.max_bytes
        if length > limit:
            self._drain(length)
            return self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"file too large: {length:,} bytes, the limit is {limit:,} bytes"
            )
        hints_header = self.headers.get(HINTS_HEADER)
        try:
            boundary = form_boundary(self.headers.get("Content-Type"))
            hints = self.model.read_hints(hints_header) if path == "/translate" else None
        except UploadError as exc:
            self._drain(length)
            return self._error(exc.status, str(exc))
        if not self.model.queue_places.acquire(blocking=False):
            self._drain(length)
            return self._error(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"busy: {self.model.max_queued} uploads are already queued; try again in {RETRY_AFTER_S} s",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        try:
            body = self.rfile.read(length)
            upload, hints_field = read_form(body, boundary) if boundary else (body, None)
            if path == "/grey":
                png = self.model.grey_png(upload)
            elif hints_field is None:
                png = self.model.translate_png(upload, hints)
            elif hints_header is not None:
                raise UploadError(HTTPStatus.BAD_REQUEST, f"hints in both the {HINTS_HEADER} header and the {HINTS_FIELD} field: send one")
            else:
                png = self.model.translate_png(upload, self.model.read_hints(hints_field, HINTS_FIELD), HINTS_FIELD)
        except UploadError as exc:
            return self._error(exc.status, str(exc))
        except Exception as exc:  # a model failure must not kill the server; the page shows it
            self.log_error("translation failed: %r", exc)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"translation failed ({type(exc).__name__}: {exc})")
        finally:
            self.model.queue_places.release()
        self._send(HTTPStatus.OK, "image/png", png)

    def _drain(self, length: int) -> None:
        """Read and drop a rejected body (up to DRAIN_LIMIT), then close the connection."""
        self.close_connection = True
        remaining = length if length <= DRAIN_LIMIT else 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 2**20))
            if not chunk:
                break
            remaining -= len(chunk)

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, "application/json", json.dumps({"error": message}).encode("utf-8"), headers)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", self.model.policy)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class DemoServer(ThreadingHTTPServer):
    # Connections the kernel holds until accepted (capped by net.core.somaxconn); the standard
    # library's 5 made it reset a third of 50 concurrent uploads.
    request_queue_size = 128


def make_server(model: DemoModel, host: str = "127.0.0.1", port: int = 8000) -> DemoServer:
    """Bind (port 0: any free port; read it from ``server.server_address``)."""
    handler = type("BoundDemoHandler", (DemoHandler,), {"model": model})
    try:
        return DemoServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve_until_signal(server: DemoServer) -> int:
    """Serve until SIGINT or SIGTERM, then close the listening socket; returns the signal number.

    Request threads are daemons: a translation still running at that moment is abandoned.
    """
    received: list[int] = []

    def stop(signum, frame):
        received.append(signum)
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() waits for serve_forever

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0] if received else 0


def warn_if_exposed(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach it can use the model (no authentication)", file=sys.stderr)
