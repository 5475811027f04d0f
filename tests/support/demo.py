"""The demo server, in this process or as `python -m stages.serve`, and the configuration its page embeds."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import torch
from torch import nn

from pix2pix.apps.serve import DemoModel, Limits, make_server
from pix2pix.infer.translate import Translator


class Colourless(nn.Module):
    """A colorization generator without hints that predicts no colour: its output is the grey it sees."""

    depth = 0

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], 2, *x.shape[2:]))


class Inverts(nn.Module):
    """An RGB generator whose output is its input's negative: what comes back shows what went in, pixel for pixel."""

    depth = 0

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


@contextlib.contextmanager
def serving(translator: Translator, limits: Limits, palette: str | None = None):
    """The demo server in this process on a free 127.0.0.1 port; yields its URL."""
    server = make_server(DemoModel(translator, limits, max_queued=2, palette=palette), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def page_config(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        page = response.read().decode()
    return json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>', page, re.DOTALL).group(1))


def start_server(repo_root: Path, run: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``python -m stages.serve`` on a free port; returns the process and the URL it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.serve", "--checkpoint", str(run), "--port", "0", *args],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ready, _, _ = select.select([process.stdout], [], [], 120)
    line = process.stdout.readline() if ready else ""
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        process.kill()
        raise AssertionError(f"server did not start: {line!r} {process.stderr.read()}")
    return process, match.group(0)


def stop_server(process: subprocess.Popen, signum: int) -> str:
    """Send the signal; the server must exit 0 promptly and say so."""
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, (process.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    return stdout
