"""Static HTML reports: one page per experiment (images, metrics, loss and validation curves) and an index listing them.

Every metric is shown with its direction (lower or higher is better) and beside its trivial
baselines (the input itself, the mean training image, chance), which ``pix2pix evaluate``
records in evaluation.json beside the means in metrics.json: that is what says whether a model is
any good. Experiments are different tasks with different data, so the index never ranks one against another.

A report folder is self-contained and works offline: the evaluation images are hard-linked (or
copied) into it, every link is relative, and nothing is fetched from the network. The image table
is rendered page by page in the browser from a JSON blob, so 10,000 rows stay responsive. The
pages are the ``templates/*.html.j2`` files of this package (see ``pix2pix.apps.pages``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pix2pix.apps.pages import content_security_policy, packaged_text, render
from pix2pix.errors import UserError
from pix2pix.files import atomic_directory, atomic_write_text, check_output_separate
from pix2pix.infer.summary import context_file, is_number, read_json, read_summary, write_summary

IMAGE_KINDS = ("inputs", "outputs", "targets")
# The adversarial terms every run logs (pix2pix and cGAN); its other loss columns get a panel of their own.
ADVERSARIAL = ("G_GAN", "D_real", "D_fake")
NOT_LOSSES = ("step", "epoch", "lr")
NOT_METRICS = ("step", "epoch")  # val.csv's columns that are not scores
BOOKKEEPING = ("count", "eval_mode")  # numbers in metrics.json that are not metrics
BETTER = {"lower": "↓ lower is better", "higher": "↑ higher is better"}
# The cGAN's metrics.json (written by training) holds numbers alone; its report adds what they mean.
CGAN_DIRECTIONS = {"conditioning_accuracy": "higher", "diversity": "higher"}
CGAN_BASELINES = {"chance": {"conditioning_accuracy": 0.1}}  # a label-blind generator: one digit in ten
ROWS_PER_PAGE = 50


@dataclass(frozen=True)
class MetricsTable:
    """metrics.csv: metric column names and, per image, its name and values (None when not finite)."""

    columns: list[str]
    rows: list[tuple[str, list[float | None]]]


def read_metrics_table(path: Path) -> MetricsTable:
    """Parse and check the ``metrics.csv`` of ``pix2pix evaluate``; any defect is a UserError naming the file."""
    if not path.is_file():
        raise UserError(f"{path}: not found (expected the metrics.csv written by `pix2pix evaluate`)")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if not header or header[0] != "name":
                raise UserError(f"{path}: the header must start with 'name'")
            rows = []
            for record in reader:
                where = f"{path}: line {reader.line_num}"
                if len(record) != len(header):
                    raise UserError(f"{where}: {len(record)} fields, expected {len(header)}")
                name = record[0]
                if not name or "/" in name or "\0" in name:  # names become file names: no path tricks
                    raise UserError(f"{where}: bad image name {name!r}")
                try:
                    values = [float(value) for value in record[1:]]
                except ValueError:
                    raise UserError(f"{where}: metrics must be numbers") from None
                rows.append((name, [value if math.isfinite(value) else None for value in values]))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: {exc}") from None
    return MetricsTable(header[1:], rows)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard link when possible (fast, no extra space: evaluate never rewrites an image in place), else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def plot_losses(losses_csv: Path, output_png: Path) -> bool:
    """Draw the GAN terms and the other terms (L1, ...) against the step (two panels: their scales differ).

    Returns False when the file has no rows yet. Noisy curves get a moving average on top.
    """
    table = _read_numeric_csv(losses_csv, ("step", *ADVERSARIAL))
    others = tuple(column for column in table.columns if column not in (*NOT_LOSSES, *ADVERSARIAL))
    table = table[["step", *ADVERSARIAL, *others]]
    if table.empty:
        return False
    window = max(1, len(table) // 50)
    panels = [(ADVERSARIAL, "adversarial losses"), *([(others, f"{', '.join(others)} (unweighted)")] if others else [])]
    figure = _figure(len(panels))
    all_axes = figure.axes
    for axes, (names, title) in zip(all_axes, panels):
        for name in names:
            (line,) = axes.plot(table["step"], table[name].rolling(window, min_periods=1).mean(), lw=1.6, label=name)
            if window > 1:
                axes.plot(table["step"], table[name], lw=0.6, alpha=0.25, color=line.get_color())
        axes.legend(loc="best", frameon=False)
        axes.grid(alpha=0.3)
        axes.set_title(title)
    if window > 1:
        all_axes[0].set_title(f"{panels[0][1]} (moving average over {window} logs)")
    all_axes[-1].set_xlabel("step")
    figure.savefig(output_png)
    return True


def plot_validation(val_csv: Path, output_png: Path, best_metric: str | None, directions: dict[str, str]) -> bool:
    """Draw each validation score against the step (one panel per metric), the best of ``best_metric`` marked:
    the step best.pt was saved at. Returns False when the file has no rows yet."""
    table = _read_numeric_csv(val_csv, ("step",))
    if table.empty:
        return False
    metrics = [column for column in table.columns if column not in NOT_METRICS]
    figure = _figure(len(metrics))
    for axes, name in zip(figure.axes, metrics):
        axes.plot(table["step"], table[name], marker="o", ms=3, lw=1.4)
        direction = directions.get(name)
        axes.set_title(f"{name} ({direction} is better)" if direction else name)
        if name == best_metric and direction in ("lower", "higher"):
            best = table[name].idxmin() if direction == "lower" else table[name].idxmax()
            axes.plot(table["step"][best], table[name][best], "*", ms=14, color="tab:red", label=f"best: step {table['step'][best]:.0f} (best.pt)")
            axes.legend(loc="best", frameon=False)
        axes.grid(alpha=0.3)
    figure.axes[-1].set_xlabel("step")
    figure.savefig(output_png)
    return True


def _read_numeric_csv(path: Path, required: Sequence[str]):
    """A per-step CSV as a numeric table, or the one-line error naming the file."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
        missing = [column for column in required if column not in table.columns]
        if missing:
            raise UserError(f"{path}: missing columns {', '.join(missing)}")
        return table.apply(pd.to_numeric)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file, expected a header") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: {exc}") from None


def _figure(panels: int):
    """A figure of ``panels`` stacked axes sharing the step axis, drawn without a display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 2.2 + 1.8 * panels), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    figure.subplots(panels, 1, sharex=True, squeeze=False)
    return figure
def plot_hint_curve(summary: dict, source: Path, output_png: Path) -> None:
    """Draw a hint model's ``hint_curve`` from its ``summary`` (``source`` names its file in errors): each metric
    against the number of hints, one panel each, with the grey baseline where the summary has it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curve = summary["hint_curve"]
    try:
        counts, directions = curve["counts"], curve["directions"]
        well_formed = bool(counts) and all(isinstance(count, int) for count in counts) and all(
            direction in BETTER and len(curve[metric]) == len(counts) and all(map(is_number, curve[metric]))
            for metric, direction in directions.items()
        )
    except (TypeError, KeyError, AttributeError):
        well_formed = False
    if not well_formed:
        raise UserError(f"{source}: 'hint_curve' must hold 'counts' (whole numbers), 'directions' and a number per count for each metric")
    grey = summary.get("baselines", {}).get("grey", {})
    figure = Figure(figsize=(9, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (metric, direction) in zip(figure.subplots(1, len(directions), squeeze=False)[0], directions.items()):
        axes.plot(counts, curve[metric], marker="o", lw=1.6, label="model")
        if is_number(grey.get(metric)):
            axes.axhline(grey[metric], color="grey", ls="--", lw=1.2, label="grey baseline")
        axes.set_xscale("symlog", linthresh=1)
        axes.set_xticks(counts, [str(count) for count in counts])
        axes.set_xlabel("hints simulated from the target")
        axes.set_title(f"{metric} ({BETTER[direction]})")
        axes.legend(loc="best", frameon=False)
        axes.grid(alpha=0.3)
    figure.savefig(output_png)


@dataclass(frozen=True)
class Comparison:
    """One experiment's metrics beside its own baselines.

    ``metrics``: per metric its ``name``, ``better`` (the direction in words, "" if unknown),
    ``value`` and ``baselines`` (per baseline: its ``value`` and whether the model ``beats`` it,
    None where that cannot be said). ``verdicts``: per baseline, (metrics beaten, metrics compared).
    """

    metrics: list[dict]
    verdicts: dict[str, tuple[int, int]]


def beats(value: float, baseline: float, direction: str) -> bool:
    """Whether the model's ``value`` is strictly better than the baseline's (a tie is not a win)."""
    return value < baseline if direction == "lower" else value > baseline


def compare_with_baselines(summary: dict, source: Path) -> Comparison:
    """Read ``directions`` and ``baselines`` from an evaluation's ``summary`` (``source`` names their file in errors).

    A summary without them (an older evaluate) gives metrics without directions and no baselines.
    """
    directions, baselines = summary.get("directions", {}), summary.get("baselines", {})
    if not isinstance(directions, dict) or not all(value in BETTER for value in directions.values()):
        raise UserError(f"{source}: 'directions' must map each metric to \"lower\" or \"higher\"")
    if not isinstance(baselines, dict) or not all(
        isinstance(scores, dict) and all(is_number(value) for value in scores.values()) for scores in baselines.values()
    ):
        raise UserError(f"{source}: 'baselines' must map each baseline to {{metric: number}}")
    metrics, verdicts = [], {name: (0, 0) for name in baselines}
    for name, value in summary.items():
        if name in BOOKKEEPING or not is_number(value):
            continue
        direction = directions.get(name)
        row = {"name": name, "better": BETTER.get(direction, ""), "value": value, "baselines": {}}
        for baseline, scores in baselines.items():
            if name not in scores:
                continue
            beaten = beats(value, scores[name], direction) if direction else None
            row["baselines"][baseline] = {"value": scores[name], "beats": beaten}
            if beaten is not None:
                won, compared = verdicts[baseline]
                verdicts[baseline] = (won + beaten, compared + 1)
        metrics.append(row)
    return Comparison(metrics, verdicts)


def metric_summary(table: MetricsTable, means: dict) -> list[dict]:
    """Per metric: the mean from the summary, which way is better, and median / min / max over the images."""
    directions = means.get("directions", {})
    summary = []
    for index, column in enumerate(table.columns):
        values = [values[index] for _, values in table.rows if values[index] is not None]
        summary.append({
            "name": column,
            "better": BETTER.get(directions.get(column), ""),
            "mean": means.get(column),
            "median": statistics.median(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        })  # fmt: skip
    return summary


def build_report(
    experiment_name: str, eval_dir: Path, run_dir: Path | None, output_dir: Path, progress: Callable[[int, int], None] | None = None
) -> None:
    """Write ``output_dir/index.html`` (plus images/, losses.png, a hint model's hint_curve.png, metrics.csv, metrics.json
    and evaluation.json) for one experiment.

    The folder is replaced as a whole when everything is written. ``run_dir`` may be None (no
    training run at hand) or lack losses.csv (the page then says why there are no loss curves).
    ``progress(done, total)`` after each image's files are linked in.
    """
    eval_dir, output_dir = Path(eval_dir), Path(output_dir)
    run_dir = Path(run_dir) if run_dir is not None else None
    if not eval_dir.is_dir():
        raise UserError(f"{eval_dir}: evaluation folder not found (run `pix2pix evaluate` first)")
    if run_dir is not None and not run_dir.is_dir():
        raise UserError(f"{run_dir}: training run folder not found")
    check_output_separate(output_dir, [eval_dir, *([run_dir] if run_dir else [])])
    table = read_metrics_table(eval_dir / "metrics.csv")
    means, context = read_summary(eval_dir), context_file(eval_dir)
    comparison = compare_with_baselines(means, context)
    options = read_json(run_dir / "options.json") if run_dir and (run_dir / "options.json").exists() else {}
    with atomic_directory(output_dir) as staging:
        (staging / "images").mkdir()
        names = list(dict.fromkeys(name for name, _ in table.rows))
        for done, name in enumerate(names, 1):
            for kind in IMAGE_KINDS:
                source = eval_dir / "images" / f"{name}-{kind}.png"
                if not source.is_file():
                    raise UserError(f"{source}: image listed in metrics.csv is missing")
                link_or_copy(source, staging / "images" / source.name)
            if progress:
                progress(done, len(names))
        shutil.copy2(eval_dir / "metrics.csv", staging / "metrics.csv")
        write_summary(staging, means)  # an older evaluation's one file split as evaluate now writes it
        losses = run_dir / "losses.csv" if run_dir else None
        if losses is None:
            loss_note = "No training run folder was given, so there are no loss curves."
        elif not losses.is_file():
            loss_note = f"No loss curves: {losses} does not exist."
        elif not plot_losses(losses, staging / "losses.png"):
            loss_note = f"No loss curves: {losses} has no rows yet."
        else:
            loss_note = None
        val_note = _validation_plot(run_dir, options.get("val_metric"), means.get("directions", {}), staging / "validation.png")
        if has_hint_curve := "hint_curve" in means:
            plot_hint_curve(means, context, staging / "hint_curve.png")
        data = {
            "per_page": ROWS_PER_PAGE,
            "columns": table.columns,
            "rows": [[name, quote(f"images/{name}"), *values] for name, values in table.rows],
        }
        html = _render(
            "report.html.j2",
            title=experiment_name,
            eval_dir=str(eval_dir),
            run_dir=str(run_dir) if run_dir else None,
            means=means,
            summary=metric_summary(table, means),
            comparison=comparison,
            loss_note=loss_note,
            val_note=val_note,
            has_hint_curve=has_hint_curve,
            options={key: _option_text(value) for key, value in options.items()},
            data=data,
            image_count=len(table.rows),
        )
        (staging / "index.html").write_text(html, encoding="utf-8")


def _validation_plot(run_dir: Path | None, best_metric: str | None, directions: dict, output_png: Path) -> str | None:
    """Draw the run's val.csv; None when drawn, else the page's note saying why there is no plot."""
    if run_dir is None:
        return "No training run folder was given, so there are no validation curves."
    val_csv = run_dir / "val.csv"
    if not val_csv.is_file():
        return "No validation during training: the run was trained without --val-dir."
    if not plot_validation(val_csv, output_png, best_metric, directions):
        return f"No validation curves: {val_csv} has no rows yet."
    return None


def build_cgan_report(experiment_name: str, run_dir: Path, output_dir: Path) -> None:
    """Write the page of a ``pix2pix cgan train`` run: the 10 x N digit grid, conditioning accuracy, losses.

    The report keeps the run's headline numbers with their directions and chance baseline
    (``write_summary``), so the index can list it like an evaluation.
    """
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    grid = run_dir / "samples" / "final.png"
    if not grid.is_file():
        raise UserError(f"{grid}: no final sample grid (run `pix2pix cgan train` to the end first)")
    check_output_separate(output_dir, [run_dir])
    metrics = read_json(run_dir / "metrics.json")
    headline = {key: value for key, value in metrics.items() if is_number(value)}
    summary = {
        **headline,
        "directions": {key: CGAN_DIRECTIONS[key] for key in headline if key in CGAN_DIRECTIONS},
        "baselines": CGAN_BASELINES,
    }
    per_digit_file = run_dir / "per_digit.json"  # none in a run from before it was split off metrics.json
    per_digit = read_json(per_digit_file) if per_digit_file.is_file() else {}
    with atomic_directory(output_dir) as staging:
        link_or_copy(grid, staging / "grid.png")
        write_summary(staging, summary)
        losses = run_dir / "losses.csv"
        has_plot = losses.is_file() and plot_losses(losses, staging / "losses.png")
        html = _render(
            "cgan.html.j2",
            title=experiment_name,
            run_dir=str(run_dir),
            comparison=compare_with_baselines(summary, run_dir / "metrics.json"),
            per_digit=per_digit,
            loss_note=None if has_plot else f"No loss curves: {losses} is missing or empty.",
        )
        (staging / "index.html").write_text(html, encoding="utf-8")


def build_index(experiments: Sequence[tuple[str, str, dict]], output_path: Path) -> None:
    """Write one page listing experiments: a row per (name, report folder relative to the page, its ``read_summary``).

    Each experiment is set against its own baselines only; they are different tasks, so no
    column lines up one experiment's numbers with another's and none is called best.
    """
    folder = Path(output_path).parent
    rows = [
        {
            "name": name,
            "href": quote(f"{Path(report_dir).as_posix()}/index.html"),
            "count": metrics.get("count"),
            "eval_mode": metrics.get("eval_mode"),
            "comparison": compare_with_baselines(metrics, context_file(folder / report_dir)),
        }
        for name, report_dir, metrics in experiments
    ]
    html = _render("index.html.j2", title="pix2pix experiments", rows=rows)
    atomic_write_text(Path(output_path), html)


def _option_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _render(template: str, **context) -> str:
    """A report page; its CSP lets only our own pager script run and loads nothing remote."""
    policy = content_security_policy(scripts=[packaged_text("pager.js")])
    return render(template, policy=policy, **context)
