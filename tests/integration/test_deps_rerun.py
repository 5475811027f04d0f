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
    with (clone / "pix2pix" / "color.py").open("a") as file:
        file.write("# edited\n")
    assert stale(dvc, clone) == {"train@colorization", "evaluate@colorization"}
    ran = set(re.findall(r"Running stage '([^']+)'", dvc("repro", cwd=clone).stdout))
    assert {"train@colorization", "evaluate@colorization", "report@colorization"} <= ran  # the report: through its new inputs
    assert not {name for name in ran if not name.endswith("@colorization") and name != "report_index"}, ran


def test_template_edit_reruns_the_reports_only(clone, dvc):
    with (clone / "pix2pix" / "apps" / "templates" / "report.css").open("a") as file:
        file.write("/* edited */\n")
    assert stale(dvc, clone) == {"report@facades", "report@inpainting", "report@colorization", "report_cgan@digits-cgan", "report_index"}
