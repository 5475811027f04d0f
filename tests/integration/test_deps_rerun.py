"""Editing code reruns exactly the stages that run it: `dvc status` in a clone after a full repro.

The deps come from the import graph (workflow/deps.py); tests/unit/test_deps.py checks them
without running anything. Here: DVC itself, on the two edits the deps were built to tell apart.
"""

from __future__ import annotations

import json
import re


def stale(dvc, clone) -> set[str]:
    return set(json.loads(dvc("status", "--json", cwd=clone).stdout))


def test_full_repro_leaves_nothing_stale(clone, dvc):
    dvc("repro", cwd=clone)
    assert stale(dvc, clone) == set()


def test_lab_conversion_edit_reruns_colorization_only(clone, dvc):
    """A real change of the conversion (ab scaled by 1.1 more): the colorization model and its scores
    change, so its report reruns through its new inputs; nothing of the RGB experiments reruns."""
    color = clone / "pix2pix" / "color.py"
    color.write_text(color.read_text().replace("AB_SCALE = 110.0", "AB_SCALE = 121.0"))
    assert stale(dvc, clone) == {"train@colorization", "evaluate@colorization"}
    ran = set(re.findall(r"Running stage '([^']+)'", dvc("repro", cwd=clone).stdout))
    assert {"train@colorization", "evaluate@colorization", "report@colorization"} <= ran
    assert not {name for name in ran if not name.endswith("@colorization") and name not in ("report_index", "compare")}, ran


def test_template_edit_reruns_the_report_pages_only(clone, dvc):
    with (clone / "pix2pix" / "apps" / "templates" / "report.css").open("a") as file:
        file.write("/* edited */\n")
    # compare is a report page too (reports/compare.html), rendered from the same templates folder
    assert stale(dvc, clone) == {"report@facades", "report@inpainting", "report@colorization", "report_cgan@digits-cgan", "report_index", "compare"}
