"""Hostile uploads to the demo server (issue 22): a burst of concurrent uploads, and a tiny file
that claims a huge image. Every upload gets an HTTP answer (never a reset), and an image over the
pixel limit is refused from its header, before its pixels are decoded.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pix2pix.apps.serve import DemoModel, Limits, make_server
from pix2pix.data.images import list_images
from pix2pix.infer.translate import Translator
from pix2pix.train.config import TrainConfig
from pix2pix.train.pix2pix_model import train
from tests.support.demo import stop_server


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_pairs, tiny_config):
    """A tiny trained run to serve."""
    root = tmp_path_factory.mktemp("serve")
    train(TrainConfig(max_steps=2, **tiny_config), list_images(make_pairs(root / "pairs", count=2)), root / "run")
    return root / "run"


UPLOADS = 50


def post_upload(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One POST /translate on its own connection; a reset or a refused connection raises."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        connection.request("POST", "/translate", body=body, headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_concurrently(url: str, body: bytes, count: int) -> list:
    """``count`` uploads from as many threads, released together; each result is an answer or the exception."""
    start = threading.Barrier(count)

    def upload(_: int):
        start.wait()
        try:
            return post_upload(url, body)
        except OSError as exc:  # ConnectionResetError, BrokenPipeError, RemoteDisconnected...
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(upload, range(count)))


def assert_busy_answer(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 503 and int(headers["Retry-After"]) > 0, (status, headers)
    assert "busy" in json.loads(body)["error"]


def test_fifty_concurrent_uploads_each_get_an_answer(run, start_server, random_png):
    process, url = start_server(run, "--max_queued", "4")
    try:
        results = post_concurrently(url, random_png(64, 64), UPLOADS)
    finally:
        stop_server(process, signal.SIGTERM)
    failures = [result for result in results if isinstance(result, Exception)]
    assert not failures, f"{len(failures)} of {UPLOADS} uploads got no answer: {failures[:3]}"
    for status, headers, body in results:
        if status != 200:
            assert_busy_answer(status, headers, body)
    assert any(status == 200 for status, _, _ in results)


def test_uploads_beyond_the_queue_get_503_at_once(run, random_png):
    """Translations held up: exactly ``max_queued`` uploads are taken, the rest are answered 503 meanwhile."""
    translator = Translator.from_checkpoint(run)
    release, translate = threading.Event(), translator.translate
    translator.translate = lambda *args: release.wait(300) and translate(*args)
    server = make_server(DemoModel(translator, Limits(), max_queued=3), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    body, results, answered = random_png(32, 32), [], threading.Semaphore(0)

    def upload():
        results.append(post_upload(url, body))
        answered.release()

    threads = [threading.Thread(target=upload, daemon=True) for _ in range(UPLOADS)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(UPLOADS - 3):  # answered while no translation can finish
            assert answered.acquire(timeout=300), f"only {len(results)} answers while translations were held up"
        assert not release.is_set()
        for answer in results:
            assert_busy_answer(*answer)
        release.set()
        for thread in threads:
            thread.join(300)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert sorted(status for status, _, _ in results) == [200] * 3 + [503] * (UPLOADS - 3)


def blank_png(width: int, height: int) -> bytes:
    """A valid single-colour 8-bit gray PNG, compressed row by row: a few kB for millions of pixels."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte 0, then black pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def peak_memory_since_reset(pid: int, reset: bool = False) -> int:
    """The process's peak resident memory in bytes (Linux VmHWM); ``reset`` first lowers the peak to the current size."""
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


@pytest.mark.parametrize("side", [4096, 8192])
def test_huge_dimensions_in_a_small_file_are_413_before_decoding(run, start_server, random_png, side):
    png = blank_png(side, side)
    assert len(png) < 100_000  # far under the byte limit; decoded as RGB: 50 MB (4096) or 200 MB (8192)
    process, url = start_server(run)  # the default limits
    try:
        assert post_upload(url, random_png(32, 32))[0] == 200  # warm: the first translation's own allocations
        before = peak_memory_since_reset(process.pid, reset=True)
        status, headers, body = post_upload(url, png)
        peak = peak_memory_since_reset(process.pid)
    finally:
        stop_server(process, signal.SIGTERM)
    assert (status, headers["Content-Type"]) == (413, "application/json")
    assert f"{side}x{side} = {side * side:,} pixels, the limit is {2048 * 2048:,}" in json.loads(body)["error"]
    assert peak - before < 20 * 2**20, f"the server's memory grew by {(peak - before) / 2**20:.0f} MB: the image was decoded"


def test_help_states_the_pixel_bound_and_its_memory(run_cli):
    help_text = re.sub(r"[\s│]+", " ", run_cli("stages.serve", "--help", check=True).stdout)  # unwrapped, panel borders gone
    assert "larger ones get 413" in help_text and "(210 MB at the default 4,194,304 pixels (2048x2048))" in help_text
    assert "--max-queued <int> Uploads held at once" in help_text and "503 with Retry-After" in help_text
