"""A local demo page: upload an image (or draw one), see the model's translation next to it.

Like the original project's browser demo, but the model runs in this process. Standard library
only (``ThreadingHTTPServer``); the page is self-contained (inline CSS and JS, nothing fetched
from elsewhere, enforced by its Content-Security-Policy). Uploads are decoded as image files are
(``pix2pix.data.images.read_rgb``). There is no authentication, hence the 127.0.0.1 default.

- ``GET /``: the page.
- ``POST /translate``: the body is an image file; the answer is the translation as PNG, or
  JSON ``{"error": message}`` with 400 (not a readable image), 411 (no Content-Length),
  413 (too many bytes or pixels) or 415 (an image type that is not accepted).
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

from pix2pix.data.images import (
    ImageFormatNotAccepted,
    ImageTooLarge,
    encode_png,
    read_rgb,
)
from pix2pix.errors import UserError
from pix2pix.infer.translate import Translator

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
# A too-large body is read and dropped up to this size so the client sees the 413 instead of a reset.
DRAIN_LIMIT = 64 * 2**20
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class Limits:
    """What one upload may be: checked on the bytes and the image header before decoding."""

    max_bytes: int = 10_000_000
    max_pixels: int = 4096 * 4096


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
    """The translator behind the page; one translation at a time (the model is not thread-safe)."""

    def __init__(self, translator: Translator, limits: Limits):
        self.translator, self.limits = translator, limits
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
        }
        self._lock = threading.Lock()
        config = json.dumps(self.info).replace("<", "\\u003c")  # safe inside <script>
        self.page = PAGE.replace("__CONFIG__", config).encode("utf-8")

    def translate_png(self, data: bytes) -> bytes:
        rgb = decode_upload(data, self.limits)
        with self._lock:
            output = self.translator.translate([rgb])[0]
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
        data = self.rfile.read(length)
        try:
            png = self.model.translate_png(data)
        except UploadError as exc:
            return self._error(exc.status, str(exc))
        except Exception as exc:  # a model failure must not kill the server; the page shows it
            self.log_error("translation failed: %r", exc)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"translation failed ({type(exc).__name__}: {exc})")
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

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, "application/json", json.dumps({"error": message}).encode("utf-8"))

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def make_server(model: DemoModel, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """Bind (port 0: any free port; read it from ``server.server_address``)."""
    handler = type("BoundDemoHandler", (DemoHandler,), {"model": model})
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve_until_signal(server: ThreadingHTTPServer) -> int:
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


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pix2pix demo</title>
<link rel="icon" href="data:,">
<style>
  :root { font-family: system-ui, sans-serif; color: #222; background: #fafafa; }
  body { margin: 0 auto; max-width: 1100px; padding: 1rem 1.5rem 3rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .2rem; }
  .model { color: #666; margin: 0 0 1rem; }
  .panels { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
  .panel { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: .8rem; }
  .panel h2 { font-size: 1rem; margin: 0 0 .6rem; }
  #draw-panel { max-width: 322px; }
  .frame { width: 320px; height: 320px; display: flex; align-items: center; justify-content: center;
           background: repeating-conic-gradient(#eee 0 25%, #fff 0 50%) 0 0 / 16px 16px; border-radius: 4px; }
  .frame img { max-width: 100%; max-height: 100%; }
  .frame img:not([src]) { visibility: hidden; }
  #drop { border: 2px dashed #aaa; border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }
  #drop.over { border-color: #2a6; background: #efe; }
  #message { min-height: 1.4em; margin: .6rem 0; }
  #message.error { color: #b00; font-weight: 600; }
  canvas { width: 320px; height: 320px; border: 1px solid #999; touch-action: none; cursor: crosshair; background: #fff; }
  .tools { display: flex; gap: .6rem; align-items: center; margin-top: .5rem; flex-wrap: wrap; }
  small { color: #666; }
</style>
</head>
<body data-state="ready">
<h1>pix2pix demo</h1>
<p class="model" id="model"></p>
<div id="drop">
  <label for="file"><strong>Choose an image</strong> or drop one here:</label>
  <input type="file" id="file" accept="image/*">
  <br><small id="limits"></small>
</div>
<p id="message" role="status" aria-live="polite"></p>
<div class="panels">
  <div class="panel"><h2>Input</h2><div class="frame"><img id="input-image" alt="input"></div></div>
  <div class="panel"><h2>Output</h2><div class="frame"><img id="output-image" alt="translation"></div></div>
  <div class="panel" id="draw-panel" hidden>
    <h2>Draw</h2>
    <canvas id="canvas"></canvas>
    <div class="tools">
      <label>colour <input type="color" id="colour" value="#000000"></label>
      <label>brush <input type="range" id="brush" min="1" max="40" value="4"></label>
      <button type="button" id="clear">Clear</button>
      <button type="button" id="translate-drawing">Translate drawing</button>
    </div>
  </div>
</div>
<script type="application/json" id="config">__CONFIG__</script>
<script>
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const inputImage = $("input-image"), outputImage = $("output-image");

function bytes(n) {
  return n >= 1e6 ? (n / 1e6).toFixed(1) + " MB" : n >= 1e3 ? (n / 1e3).toFixed(0) + " kB" : n + " bytes";
}
function setState(state, text) {
  document.body.dataset.state = state;
  $("message").textContent = text || "";
  $("message").className = state === "error" ? "error" : "";
}

$("model").textContent = config.lab_colorization
  ? `Colorization (${config.direction}): the output keeps your image's resolution.`
  : `Direction ${config.direction}, trained on ${config.crop_size} px crops, ${config.eval_mode} mode.`;
$("limits").textContent = `PNG, JPEG, WebP, BMP, GIF or TIFF; at most ${bytes(config.max_bytes)} and ${config.max_pixels.toLocaleString("en")} pixels.`;
inputImage.onerror = () => inputImage.removeAttribute("src");

async function submit(blob, label) {
  if (blob.size > config.max_bytes) {
    return setState("error", `${label} is ${bytes(blob.size)}: the limit is ${bytes(config.max_bytes)}.`);
  }
  if (blob.type && !blob.type.startsWith("image/")) {
    return setState("error", `${label} is not an image (${blob.type}): choose a PNG, JPEG, WebP, BMP, GIF or TIFF file.`);
  }
  inputImage.src = URL.createObjectURL(blob);
  outputImage.removeAttribute("src");
  setState("busy", `translating ${label}…`);
  try {
    const response = await fetch("translate", {
      method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    if (!response.ok) {
      let reason = `${response.status} ${response.statusText}`;
      try { reason = (await response.json()).error || reason; } catch (ignored) {}
      return setState("error", `${label}: ${reason}`);
    }
    const url = URL.createObjectURL(await response.blob());
    await new Promise((resolve, reject) => { outputImage.onload = resolve; outputImage.onerror = reject; outputImage.src = url; });
    setState("done", `${label}: ${outputImage.naturalWidth}×${outputImage.naturalHeight} translated.`);
  } catch (error) {
    setState("error", `${label}: the request failed (${error && error.message || "no answer from the server"}).`);
  }
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) submit(file, file.name);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) submit(file, file.name);
});

if (config.drawing) {
  $("draw-panel").hidden = false;
  const canvas = $("canvas"), context = canvas.getContext("2d");
  canvas.width = canvas.height = config.canvas_size;
  const clear = () => { context.fillStyle = "#ffffff"; context.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let last = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => { canvas.setPointerCapture(event.pointerId); last = point(event); });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event);
    context.strokeStyle = $("colour").value;
    context.lineWidth = Number($("brush").value) * canvas.width / 320;
    context.lineCap = context.lineJoin = "round";
    context.beginPath(); context.moveTo(...last); context.lineTo(...next); context.stroke();
    last = next;
  });
  canvas.addEventListener("pointerup", () => { last = null; });
  $("clear").addEventListener("click", clear);
  $("translate-drawing").addEventListener("click", () => canvas.toBlob((blob) => submit(blob, "drawing"), "image/png"));
}
</script>
</body>
</html>
"""
