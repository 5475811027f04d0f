"""Write DVC's plots page template with the plotting library inlined, so `dvc plots show` renders offline.

DVC's own page loads vega, vega-lite and vega-embed from a CDN: offline (a cluster node, a
laptop on a train) it is a blank page. Snakemake, a dependency of this project, ships the same
three libraries as files (checked against their sha256 when it is packaged); this module writes
DVC's page with them inlined to ``.dvc/plots.html``, the template .dvc/config names. `make install`
runs it; run it again after upgrading snakemake or dvc.

    python -m workflow.plots_template
"""

from __future__ import annotations

import sys
from pathlib import Path

from dvc_render.html import PAGE_HTML

import snakemake.assets

from pix2pix.files import atomic_write_text

LIBRARIES = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")
TEMPLATE = Path(".dvc") / "plots.html"


def offline_page() -> str:
    """DVC's page with ``{scripts}`` (its CDN script tags) replaced by the libraries' own code."""
    data = Path(snakemake.assets.__file__).parent / "data"
    scripts = "\n".join(f"<script>\n{(data / name).read_text(encoding='utf-8')}\n</script>" for name in LIBRARIES)
    if "{scripts}" not in PAGE_HTML:
        raise SystemExit("dvc_render's page has no {scripts} placeholder any more: update workflow/plots_template.py")
    return PAGE_HTML.replace("{scripts}", scripts)  # DVC fills the page by str.replace, not str.format


def main(root: Path = Path(".")) -> int:
    atomic_write_text(root / TEMPLATE, offline_page())
    print(f"wrote {root / TEMPLATE}: dvc plots show renders offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
