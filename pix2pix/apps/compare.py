"""One static page comparing runs as images: the same validation inputs side by side, a column per run.

Each run is the results folder of ``pix2pix evaluate`` (images/NAME-{inputs,outputs,targets}.png,
metrics.csv, metrics.json, evaluation.json) and, optionally, its training run folder, whose ``samples/step_*.png``
(written by `pix2pix train`) the page replays with a step slider. Runs evaluated on the same
inputs (the same names and bytes) share a table: its columns are the runs, ordered by a metric
in its own direction, then the target and the input baseline (the input itself, scored by evaluate
as ``identity``, or ``grey`` for colorization). Runs on other inputs get tables of their own.

The page is one HTML file beside a folder of images (``NAME_files/``, hard-linked or copied) that
its ``<img>`` tags load lazily, so 500 rows stay light; nothing is fetched from the network.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from pix2pix.apps.pages import content_security_policy, packaged_text, render
from pix2pix.apps.report import BETTER, MetricsTable, compare_with_baselines, link_or_copy, read_metrics_table
from pix2pix.errors import UserError
from pix2pix.files import atomic_directory, atomic_write_text
from pix2pix.infer.summary import context_file, read_summary
from pix2pix.train.loop import SAMPLE_NAME, SAMPLES_DIR

ZOOMS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Run:
    """One run as the page shows it: its evaluation and, if its training folder was given, its sample grids."""

    name: str
    results_dir: Path
    summary: dict  # metrics.json and evaluation.json (pix2pix.infer.summary.read_summary)
    table: MetricsTable  # metrics.csv
    samples: list[tuple[int, Path]] = field(default_factory=list)  # (step, grid), by step
    source: str = ""  # where the page says the run comes from

    def image(self, name: str, kind: str) -> Path:
        return self.results_dir / "images" / f"{name}-{kind}.png"

    def names(self) -> list[str]:
        """The images of metrics.csv, in natural order (img2 before img10)."""
        return sorted(dict.fromkeys(name for name, _ in self.table.rows), key=_natural)


def files_folder(output_html: Path) -> Path:
    """The folder of a page's images: ``compare_files/`` beside ``compare.html``."""
    return Path(output_html).with_name(f"{Path(output_html).stem}_files")


def check_run_folders(results_dir: Path, run_dir: Path | None = None) -> None:
    """Refuse a missing results or training folder, before anything is read."""
    if not Path(results_dir).is_dir():
        raise UserError(f"{results_dir}: results folder not found (expected what `pix2pix evaluate` writes)")
    if run_dir is not None and not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: training run folder not found")


def read_run(name: str, results_dir: Path, run_dir: Path | None = None, source: str | None = None) -> Run:
    """Read and check one run: metrics.csv, its summary (with directions), every image it lists, its sample grids.
    ``source`` is where the page says it comes from (default: ``results_dir``)."""
    results_dir = Path(results_dir)
    check_run_folders(results_dir, run_dir)
    table = read_metrics_table(results_dir / "metrics.csv")
    summary = read_summary(results_dir)
    compare_with_baselines(summary, context_file(results_dir))  # refuses malformed directions and baselines
    run = Run(name, results_dir, summary, table, source=source or str(results_dir))
    for image in run.names():
        for kind in ("inputs", "outputs", "targets"):
            if not run.image(image, kind).is_file():
                raise UserError(f"{run.image(image, kind)}: image listed in metrics.csv is missing")
    if run_dir is not None:
        folder = Path(run_dir) / SAMPLES_DIR
        matches = (SAMPLE_NAME.fullmatch(path.name) for path in folder.glob("step_*.png"))
        run.samples.extend(sorted((int(match.group(1)), folder / match.group(0)) for match in matches if match))
    return run


def input_images_digest(run: Run) -> str:
    """What puts runs in one table: the names and bytes of their input images."""
    digest = hashlib.sha256()
    for name in sorted(run.names()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(run.image(name, "inputs").read_bytes()).digest())
    return digest.hexdigest()


def metric_directions(runs: Sequence[Run]) -> dict[str, str]:
    """Every metric whose direction a run's summary gives, in first-seen order, with that direction."""
    directions: dict[str, str] = {}
    for run in runs:
        for metric, direction in run.summary.get("directions", {}).items():
            directions.setdefault(metric, direction)
    return directions


def ranked(runs: Sequence[Run], indices: Sequence[int], metric: str, direction: str) -> list[int]:
    """``indices`` of ``runs``, best first by their mean ``metric`` in its ``direction``; runs without it last, as given."""
    sign = 1 if direction == "lower" else -1

    def key(index: int) -> tuple[bool, float]:
        value = runs[index].summary.get(metric)
        known = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return (not known, sign * value if known else 0.0)

    return sorted(indices, key=key)


def input_baseline(summary: dict) -> str | None:
    """The baseline of a summary scored on the input image itself (evaluate's ``input_baseline``: identity or
    grey), the one baseline whose image a results folder holds; the ``mean`` image is not kept."""
    return next((name for name in summary.get("baselines", {}) if name != "mean"), None)


def build_comparison(
    runs: Sequence[Run],
    output_html: Path,
    sort_by: str | None = None,
    title: str = "pix2pix runs compared",
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``output_html`` and its ``files_folder``: the folder is replaced as a whole, then the page written.

    ``sort_by`` (a metric) orders each table's run columns, best first; by default they stay as given.
    ``progress(done, total)`` after each image linked (or copied) into the folder.
    """
    if not runs:
        raise UserError("no runs to compare")
    output_html = Path(output_html)
    directions = metric_directions(runs)
    if sort_by is not None and sort_by not in directions:
        raise UserError(f"--sort-by {sort_by!r}: not a metric of these runs (they have: {', '.join(directions) or 'none'})")
    grouped: dict[str, list[int]] = {}
    for index, run in enumerate(runs):
        grouped.setdefault(input_images_digest(run), []).append(index)
    files = files_folder(output_html)
    links: list[tuple[Path, str]] = []  # (image, its path in the folder), linked in at the end
    groups = [_group(runs, members, number, directions, sort_by, links, files.name) for number, members in enumerate(grouped.values())]
    frames = [_frames(run, index, links, files.name) for index, run in enumerate(runs)]
    with atomic_directory(files) as staging:
        for done, (source, target) in enumerate(links, 1):
            (staging / target).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(source, staging / target)
            if progress:
                progress(done, len(links))
    steps = sorted({step for run_frames in frames for step, _ in run_frames})
    data = {
        "metrics": directions,
        "groups": [{key: group[key] for key in ("members", "orders", "values")} for group in groups],
        "frames": frames,
        "steps": steps,
    }
    html = render(
        "compare.html.j2",
        policy=content_security_policy(scripts=[packaged_text("compare.js")]),
        title=title,
        runs=runs,
        groups=groups,
        directions=directions,
        better=BETTER,
        sort_by=sort_by,
        steps=steps,
        zooms=ZOOMS,
        data=data,
    )
    atomic_write_text(output_html, html)


def _group(runs: Sequence[Run], members: list[int], number: int, directions: dict, sort_by: str | None, links: list, files: str) -> dict:
    """One table: its images added to ``links`` (group<N>/ inputs and targets, run<I>/ outputs), the run
    order for each metric and, per run and metric, each row's value (what rows are sorted by)."""
    first = runs[members[0]]
    names = first.names()
    links.extend((first.image(name, kind), f"group{number}/{name}-{kind}.png") for name in names for kind in ("inputs", "targets"))
    values = {}
    for index in members:
        links.extend((runs[index].image(name, "outputs"), f"run{index}/{name}-outputs.png") for name in names)
        table, per_name = runs[index].table, dict(runs[index].table.rows)
        values[index] = {metric: [per_name[name][table.columns.index(metric)] for name in names] for metric in table.columns if metric in directions}
    orders = {metric: ranked(runs, members, metric, direction) for metric, direction in directions.items()}
    baseline = input_baseline(first.summary)
    with Image.open(first.image(names[0], "inputs")) as image:
        width, height = image.size
    return {
        "number": number,
        "members": members,
        "columns": orders[sort_by] if sort_by else members,
        "orders": orders,
        "values": values,
        "rows": [(name, quote(name)) for name in names],
        "folders": {"group": quote(f"{files}/group{number}/"), **{index: quote(f"{files}/run{index}/") for index in members}},
        "baseline": baseline,
        "baseline_scores": first.summary.get("baselines", {}).get(baseline, {}),
        "width": width,
        "height": height,
    }


def _frames(run: Run, index: int, links: list, files: str) -> list[tuple[int, str]]:
    """The run's sample grids added to ``links`` (run<I>/samples/): (step, the page's link) each."""
    links.extend((path, f"run{index}/{SAMPLES_DIR}/{path.name}") for _, path in run.samples)
    return [(step, quote(f"{files}/run{index}/{SAMPLES_DIR}/{path.name}")) for step, path in run.samples]


def _natural(name: str) -> list:
    """Sort key putting img2 before img10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
