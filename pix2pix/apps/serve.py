"""A local demo page: upload an image (or draw one), see the model's translation next to it.

Like the original project's browser demo, but the model runs in this process, behind the
standard library's ``ThreadingHTTPServer``. The page (``templates/demo.html.j2``) is
self-contained: its CSS and JS are inlined, nothing is fetched from elsewhere, and its
Content-Security-Policy lets only its own script run. Uploads are decoded as image files are
(``pix2pix.data.images.read_rgb``). There is no authentication, hence the 127.0.0.1 default.

- ``GET /``: the page.
- ``POST /translate``: the body is an image file; the answer is the translation as PNG, or
  JSON ``{"error": message}`` with 400 (not a readable image, or bad hints), 411 (no Content-Length),
  413 (too many bytes or pixels), 415 (an image type that is not accepted) or 503 with
  Retry-After (``max_queued`` uploads are already being decoded, waiting or translated).
  A hint model's colour hints come in the ``X-Hints`` header: the JSON list ``translate --hints``
  reads, ``[{"x": int, "y": int, "color": "#rrggbb", "size": px}]`` in the upload's own pixels
  (size optional, 1 to ``Limits.max_hint_size``; at most ``Limits.max_hints`` hints). The
  header sent to a model without hints is a 400, as is any bad hint; the page's config says
  which (``"hints"``).

A burst of uploads is answered, never reset: the kernel queues up to ``DemoServer.request_queue_size``
connections until they are accepted, and each accepted upload beyond the queue is answered 503 at once.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from pix2pix.apps.pages import content_security_policy, packaged_text, render
from pix2pix.data.hints import Hint, check_hints_fit, parse_hints
from pix2pix.data.images import (
    ImageFormatNotAccepted,
    ImageTooLarge,
    encode_png,
    read_rgb,
)
from pix2pix.errors import UserError
from pix2pix.infer.translate import NO_HINTS, Translator

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
# A too-large body is read and dropped up to this size so the client sees the 413 instead of a reset.
DRAIN_LIMIT = 64 * 2**20
# What a 503 tells the client to wait: a few translations of a typical upload.
RETRY_AFTER_S = 5
HINTS_HEADER = "X-Hints"


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

    def __init__(self, translator: Translator, limits: Limits, max_queued: int):
        self.translator, self.limits, self.max_queued = translator, limits, max_queued
        self.queue_places = threading.BoundedSemaphore(max_queued)
        task, crop_size = translator.task, translator.config.get("crop_size", 256)
        self.info = {
            "direction": task.direction,
            "lab_colorization": task.lab_colorization,
            "crop_size": crop_size,
            "eval_mode": "train" if translator.generator.training else "eval",
            "drawing": not task.lab_colorization,  # label maps and edges can be drawn; a gray photo cannot
            "canvas_size": max(256, crop_size),
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

    def read_hints(self, header: str | None) -> list[Hint] | None:
        """The ``X-Hints`` header -> a hint model's hints (none: ``[]``), ``None`` for a model without; checked
        before the upload is read, except against its size (``translate_png``)."""
        if not self.translator.task.hints:
            if header is None:
                return None
            raise UploadError(HTTPStatus.BAD_REQUEST, f"{HINTS_HEADER}: this model {NO_HINTS}")
        if header is None:
            return []
        try:
            value = json.loads(header)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise UploadError(HTTPStatus.BAD_REQUEST, f"{HINTS_HEADER}: not readable JSON ({exc})") from None
        try:
            return parse_hints(value, HINTS_HEADER, self.limits.max_hints, self.limits.max_hint_size)
        except UserError as exc:
            raise UploadError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    def translate_png(self, data: bytes, hints: list[Hint] | None = None) -> bytes:
        """An upload -> its translation as PNG; a hint model's ``hints`` (from ``read_hints``) must fall inside it."""
        rgb = decode_upload(data, self.limits)
        try:
            check_hints_fit(hints or [], rgb.shape[:2], HINTS_HEADER)
        except UserError as exc:
            raise UploadError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        with self._lock:
            output = self.translator.translate([rgb], None if hints is None else [hints])[0]
        return encode_png(output)


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "pix2pix-serve"
    timeout = 60  # a stalled upload frees its thread
    model: DemoModel  # set on the subclass that make_server builds

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            return self._error(HTTPStatus.NOT_FOUND, f"no page {self.path}; the demo is at /")
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.model.page)

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/translate":
            return self._error(HTTPStatus.NOT_FOUND, f"nothing to POST to at {self.path}; use /translate")
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
        try:
            hints = self.model.read_hints(self.headers.get(HINTS_HEADER))
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
            png = self.model.translate_png(self.rfile.read(length), hints)
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
