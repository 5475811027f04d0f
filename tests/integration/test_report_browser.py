"""A built HTML report in headless Chromium: its pager, lazy images and escaping, moved away from its sources.

The reports themselves (escaping, paging data, self-contained folders, clean failures): tests/unit/test_report.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from pix2pix.apps.report import build_report


def browse(chromium: str, profile: Path, url: str, *flags: str) -> str:
    """Load ``url`` offline-minded and headless, let its scripts and images settle, return stdout."""
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--hide-scrollbars", *flags, url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def body_attributes(dom: str) -> dict[str, str]:
    return dict(re.findall(r'(data-[\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))


def test_report_in_headless_chromium(tmp_path, chromium, hostile, make_results):
    names = [f"img{index:02d}" for index in range(59)] + [hostile.name]
    eval_dir, run_dir = make_results(tmp_path, names)
    build_report(hostile.title, eval_dir, run_dir, tmp_path / "built")
    report = (tmp_path / "built").rename(tmp_path / "moved")  # relocatable, and self-contained:
    shutil.rmtree(eval_dir)
    url = (report / "index.html").as_uri()
    # A window tall enough that the lazy images of a whole 50-row page are all due to load.
    first = browse(chromium, tmp_path / "profile", url, "--window-size=1280,12000", "--dump-dom")
    assert body_attributes(first) == {"data-page": "1", "data-rows": "50", "data-images": f"loaded:{50 * 3 + 1}"}
    as_text = hostile.name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # how the DOM serialises text
    assert 'id="loss-plot"' in first and f'<td class="name">{as_text}</td>' in first
    assert "rows 1–50 of 60" in first and '<span id="pages">2</span>' in first
    (report / "images" / "img58-targets.png").unlink()  # sorted by name, the last row of page 2
    second = browse(chromium, tmp_path / "profile", url + "#page=2", "--window-size=1280,12000", "--dump-dom")
    assert body_attributes(second) == {"data-page": "2", "data-rows": "10", "data-images": f"broken:1/{10 * 3 + 1}"}
    browse(chromium, tmp_path / "profile", url, "--window-size=1280,1600", f"--screenshot={tmp_path / 'shot.png'}")
    low, high = Image.open(tmp_path / "shot.png").convert("L").getextrema()
    assert high - low > 100  # text, plot and images drawn, not a blank page
