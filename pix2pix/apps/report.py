"""Static HTML reports: one page per experiment (images, metrics, loss curves) and an index comparing them.

A report folder is self-contained and works offline: the evaluation images are hard-linked (or
copied) into it, every link is relative, and nothing is fetched from the network. The image table
is rendered page by page in the browser from a JSON blob, so 10,000 rows stay responsive.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pix2pix.errors import UserError
from pix2pix.files import atomic_directory, atomic_write_text, check_output_separate

IMAGE_KINDS = ("inputs", "outputs", "targets")
# The adversarial terms every run logs (pix2pix and cGAN); its other loss columns get a panel of their own.
ADVERSARIAL = ("G_GAN", "D_real", "D_fake")
NOT_LOSSES = ("step", "epoch", "lr")
LOWER_IS_BETTER = {"l1", "ciede2000"}
HIGHER_IS_BETTER = {"psnr", "ssim", "conditioning_accuracy", "diversity"}
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


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; missing or malformed is a UserError naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object")
    return value


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
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    try:
        table = pd.read_csv(losses_csv)
        missing = [column for column in ("step", *ADVERSARIAL) if column not in table.columns]
        if missing:
            raise UserError(f"{losses_csv}: missing columns {', '.join(missing)}")
        others = tuple(column for column in table.columns if column not in (*NOT_LOSSES, *ADVERSARIAL))
        table = table[["step", *ADVERSARIAL, *others]].apply(pd.to_numeric)
    except pd.errors.EmptyDataError:
        raise UserError(f"{losses_csv}: empty file, expected a header") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{losses_csv}: {exc}") from None
    if table.empty:
        return False
    window = max(1, len(table) // 50)
    figure = Figure(figsize=(9, 5.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    panels = [(ADVERSARIAL, "adversarial losses"), *([(others, f"{', '.join(others)} (unweighted)")] if others else [])]
    all_axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
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


def metric_summary(table: MetricsTable, means: dict) -> list[dict]:
    """Per metric: the mean from metrics.json, and median / min / max over the images."""
    summary = []
    for index, column in enumerate(table.columns):
        values = [values[index] for _, values in table.rows if values[index] is not None]
        summary.append({
            "name": column,
            "mean": means.get(column),
            "median": statistics.median(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        })  # fmt: skip
    return summary


def build_report(experiment_name: str, eval_dir: Path, run_dir: Path | None, output_dir: Path) -> None:
    """Write ``output_dir/index.html`` (plus images/, losses.png, metrics.csv/json) for one experiment.

    The folder is replaced as a whole when everything is written. ``run_dir`` may be None (no
    training run at hand) or lack losses.csv (the page then says why there are no loss curves).
    """
    eval_dir, output_dir = Path(eval_dir), Path(output_dir)
    run_dir = Path(run_dir) if run_dir is not None else None
    if not eval_dir.is_dir():
        raise UserError(f"{eval_dir}: evaluation folder not found (run `pix2pix evaluate` first)")
    if run_dir is not None and not run_dir.is_dir():
        raise UserError(f"{run_dir}: training run folder not found")
    check_output_separate(output_dir, [eval_dir, *([run_dir] if run_dir else [])])
    table = read_metrics_table(eval_dir / "metrics.csv")
    means = read_json(eval_dir / "metrics.json")
    options = read_json(run_dir / "options.json") if run_dir and (run_dir / "options.json").exists() else {}
    with atomic_directory(output_dir) as staging:
        (staging / "images").mkdir()
        for name in dict.fromkeys(name for name, _ in table.rows):
            for kind in IMAGE_KINDS:
                source = eval_dir / "images" / f"{name}-{kind}.png"
                if not source.is_file():
                    raise UserError(f"{source}: image listed in metrics.csv is missing")
                link_or_copy(source, staging / "images" / source.name)
        for metrics_file in ("metrics.csv", "metrics.json"):
            shutil.copy2(eval_dir / metrics_file, staging / metrics_file)
        losses = run_dir / "losses.csv" if run_dir else None
        if losses is None:
            loss_note = "No training run folder was given, so there are no loss curves."
        elif not losses.is_file():
            loss_note = f"No loss curves: {losses} does not exist."
        elif not plot_losses(losses, staging / "losses.png"):
            loss_note = f"No loss curves: {losses} has no rows yet."
        else:
            loss_note = None
        data = {
            "per_page": ROWS_PER_PAGE,
            "columns": table.columns,
            "rows": [[name, quote(f"images/{name}"), *values] for name, values in table.rows],
        }
        html = _render(
            "report",
            title=experiment_name,
            eval_dir=str(eval_dir),
            run_dir=str(run_dir) if run_dir else None,
            means=means,
            summary=metric_summary(table, means),
            loss_note=loss_note,
            options={key: _option_text(value) for key, value in options.items()},
            data=data,
            image_count=len(table.rows),
        )
        (staging / "index.html").write_text(html, encoding="utf-8")


def build_cgan_report(experiment_name: str, run_dir: Path, output_dir: Path) -> None:
    """Write the page of a ``pix2pix cgan train`` run: the 10 x N digit grid, conditioning accuracy, losses.

    ``metrics.json`` in the report keeps the run's headline numbers, so the index can list it.
    """
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    grid = run_dir / "samples" / "final.png"
    if not grid.is_file():
        raise UserError(f"{grid}: no final sample grid (run `pix2pix cgan train` to the end first)")
    check_output_separate(output_dir, [run_dir])
    metrics = read_json(run_dir / "metrics.json")
    headline = {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
    per_digit = metrics.get("per_digit", {})
    with atomic_directory(output_dir) as staging:
        link_or_copy(grid, staging / "grid.png")
        atomic_write_text(staging / "metrics.json", json.dumps(headline, indent=2) + "\n")
        losses = run_dir / "losses.csv"
        has_plot = losses.is_file() and plot_losses(losses, staging / "losses.png")
        html = _render(
            "cgan",
            title=experiment_name,
            run_dir=str(run_dir),
            headline=headline,
            per_digit=per_digit,
            loss_note=None if has_plot else f"No loss curves: {losses} is missing or empty.",
        )
        (staging / "index.html").write_text(html, encoding="utf-8")


def build_index(experiments: Sequence[tuple[str, str, dict]], output_path: Path) -> None:
    """Write one page comparing experiments: a row per (name, report folder relative to the page, metrics.json)."""
    columns = list(dict.fromkeys(key for _, _, metrics in experiments for key in metrics))
    columns.sort(key=lambda column: column in ("count", "eval_mode"))  # metrics first, bookkeeping last
    best = {}
    for column in columns:
        values = [m[column] for _, _, m in experiments if isinstance(m.get(column), (int, float))]
        if len(values) > 1 and column in LOWER_IS_BETTER | HIGHER_IS_BETTER:
            best[column] = (min if column in LOWER_IS_BETTER else max)(values)
    rows = [
        {"name": name, "href": quote(f"{Path(report_dir).as_posix()}/index.html"), "metrics": metrics}
        for name, report_dir, metrics in experiments
    ]
    html = _render("index", title="pix2pix experiments", columns=columns, rows=rows, best=best)
    atomic_write_text(Path(output_path), html)


def _option_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _number(value) -> str:
    """Four decimals for floats, as-is for counts and words, a dash for missing values."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _render(template: str, **context) -> str:
    """Render with autoescaping; the page's CSP lets only our own pager script run and loads nothing remote."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    environment.filters["number"] = _number
    # |tojson escapes < > & ' as \u003c etc., so "</script>" and "<!--" in names stay inert.
    environment.policies["json.dumps_kwargs"] = {"allow_nan": False, "ensure_ascii": False}
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return environment.get_template(template).render(script=SCRIPT, script_hash=script_hash, **context)


# The pager: static, so the page can allow exactly this script by its hash (see the CSP in "base").
SCRIPT = """
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PER_PAGE = data.per_page;
  const KINDS = ["inputs", "outputs", "targets"];
  const rows = data.rows;  // [name, quoted src prefix, ...metric values]
  const pageCount = Math.max(1, Math.ceil(rows.length / PER_PAGE));
  const $ = (id) => document.getElementById(id);
  const body = document.querySelector("#images tbody");
  const byName = new Intl.Collator(undefined, { numeric: true });  // img2 before img10
  let generation = 0;

  function state() {
    const params = new URLSearchParams(location.hash.slice(1));
    const page = Math.min(Math.max(parseInt(params.get("page"), 10) || 1, 1), pageCount);
    const sort = [...$("sort").options].some((o) => o.value === params.get("sort")) ? params.get("sort") : "name:asc";
    return { page, sort };
  }

  function go(change) {
    const next = { ...state(), ...change };
    location.hash = new URLSearchParams({ page: next.page, sort: next.sort }).toString();
  }

  function sorted(sort) {
    const [column, direction] = sort.split(":");
    if (column === "name") return [...rows].sort((a, b) => byName.compare(a[0], b[0]));
    const index = 2 + data.columns.indexOf(column);
    const sign = direction === "desc" ? -1 : 1;
    // Missing values (null) go last whatever the direction.
    return [...rows].sort((a, b) => (a[index] === null) - (b[index] === null) || sign * (a[index] - b[index]));
  }

  function cell(className, child) {
    const td = document.createElement("td");
    td.className = className;
    if (typeof child === "string") td.textContent = child; else td.append(child);
    return td;
  }

  function image(src, alt) {
    const link = document.createElement("a");
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = alt;
    img.src = link.href = src;
    link.append(img);
    return link;
  }

  function render() {
    const { page, sort } = state();
    const start = (page - 1) * PER_PAGE;
    const shown = sorted(sort).slice(start, start + PER_PAGE);
    body.replaceChildren(...shown.map((row) => {
      const tr = document.createElement("tr");
      tr.append(cell("name", row[0]));
      KINDS.forEach((kind) => tr.append(cell("img", image(`${row[1]}-${kind}.png`, `${row[0]} ${kind}`))));
      row.slice(2).forEach((value) => tr.append(cell("num", value === null ? "–" : value.toFixed(4))));
      return tr;
    }));
    $("page").value = page;
    $("page").max = pageCount;
    $("pages").textContent = pageCount;
    $("sort").value = sort;
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= pageCount;
    $("range").textContent = rows.length ? `rows ${start + 1}–${start + shown.length} of ${rows.length}` : "no images";
    document.body.dataset.page = page;
    document.body.dataset.rows = shown.length;
    watchImages();
  }

  // Marks <body data-images="loaded:N"> once every image on the page (plot included) has decoded,
  // or "broken:K/N" if some failed: a hook for the browser test and for anyone debugging a report.
  function watchImages() {
    const token = ++generation;
    const images = [...document.images];
    document.body.dataset.images = "loading";
    const settled = (img) => img.complete ? Promise.resolve() : new Promise((done) => {
      img.addEventListener("load", done, { once: true });
      img.addEventListener("error", done, { once: true });
    });
    Promise.all(images.map(settled)).then(() => {
      if (token !== generation) return;
      const broken = images.filter((img) => !(img.naturalWidth > 0)).length;
      document.body.dataset.images = broken ? `broken:${broken}/${images.length}` : `loaded:${images.length}`;
    });
  }

  $("prev").addEventListener("click", () => go({ page: state().page - 1 }));
  $("next").addEventListener("click", () => go({ page: state().page + 1 }));
  $("page").addEventListener("change", (event) => go({ page: parseInt(event.target.value, 10) || 1 }));
  $("sort").addEventListener("change", (event) => go({ page: 1, sort: event.target.value }));
  window.addEventListener("hashchange", render);
  render();
})();
"""

TEMPLATES = {
    "losses": """<h2>Training losses</h2>
{% if loss_note %}
<p class="note" id="no-losses">{{ loss_note }}</p>
{% else %}
<img class="plot" id="loss-plot" src="losses.png" alt="generator and discriminator losses against the training step">
{% endif %}
""",
    "base": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'sha256-{{ script_hash }}'">
<title>{{ title }}</title>
<style>
  :root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; --accent: #0969da; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); }
  main { max-width: 1180px; margin: 0 auto; padding: 24px 20px 60px; }
  h1 { font-size: 26px; margin: 0 0 4px; overflow-wrap: anywhere; }
  h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
  .muted { color: var(--muted); }
  code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg); padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
  a { color: var(--accent); }
  table { border-collapse: collapse; }
  th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
  th { background: var(--bg); font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .best { font-weight: 700; color: #1a7f37; }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 16px; }
  .card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 130px; }
  .card .label { color: var(--muted); font-size: 13px; text-transform: uppercase; letter-spacing: .04em; }
  .card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .plot { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; }
  .note { background: #fff8c5; border: 1px solid #d4a72c66; border-radius: 8px; padding: 10px 14px; }
  details { margin-top: 16px; }
  summary { cursor: pointer; font-weight: 600; }
  .pager { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; margin: 12px 0; }
  .pager button, .pager select, .pager input { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
  .pager button:disabled { opacity: .4; }
  .pager input { width: 5em; }
  .pager .spacer { flex: 1; }
  #images { width: 100%; table-layout: fixed; }
  #images thead th { position: sticky; top: 0; z-index: 1; }
  #images .name-col { width: 16%; }
  #images .metric-col { width: 6.5em; }
  #images td.name { overflow-wrap: anywhere; font-weight: 600; }
  #images td.img { text-align: center; }
  #images td.img img { width: 100%; max-width: 256px; height: auto; min-height: 48px; display: inline-block; background: var(--bg); border-radius: 4px; }
</style>
</head>
<body>
<main>
{% block content %}{% endblock %}
</main>
</body>
</html>
""",
    "report": """{% extends "base" %}
{% block content %}
<h1>{{ title }}</h1>
<p class="muted">{{ image_count }} images{% if means.eval_mode is defined %}, evaluated in <code>{{ means.eval_mode }}</code> mode{% endif %}
  · results <code>{{ eval_dir }}</code>{% if run_dir %} · run <code>{{ run_dir }}</code>{% endif %}</p>

<h2>Metrics</h2>
<div class="cards">
{% for metric in summary %}
  <div class="card"><div class="label">{{ metric.name }}</div><div class="value">{{ metric.mean|number }}</div></div>
{% endfor %}
</div>
<table id="summary">
  <thead><tr><th>metric</th><th class="num">mean</th><th class="num">median</th><th class="num">min</th><th class="num">max</th></tr></thead>
  <tbody>
  {% for metric in summary %}
    <tr><td>{{ metric.name }}</td>{% for key in ("mean", "median", "min", "max") %}<td class="num">{{ metric[key]|number }}</td>{% endfor %}</tr>
  {% endfor %}
  </tbody>
</table>

{% include "losses" %}
{% if options %}
<details>
  <summary>Training options</summary>
  <table>{% for key, value in options.items() %}<tr><th>{{ key }}</th><td><code>{{ value }}</code></td></tr>{% endfor %}</table>
</details>
{% endif %}

<h2>Images</h2>
<div class="pager">
  <button type="button" id="prev">&larr; previous</button>
  <span>page <input id="page" type="number" min="1" value="1" aria-label="page number"> of <span id="pages">1</span></span>
  <button type="button" id="next">next &rarr;</button>
  <span class="spacer"></span>
  <label>sort by <select id="sort">
    <option value="name:asc">name</option>
    {% for column in data.columns %}
    <option value="{{ column }}:asc">{{ column }}, lowest first</option>
    <option value="{{ column }}:desc">{{ column }}, highest first</option>
    {% endfor %}
  </select></label>
  <span class="muted" id="range"></span>
</div>
<table id="images">
  <colgroup><col class="name-col"><col span="3"><col span="{{ data.columns|length }}" class="metric-col"></colgroup>
  <thead><tr><th>name</th><th>input</th><th>output</th><th>target</th>{% for column in data.columns %}<th class="num">{{ column }}</th>{% endfor %}</tr></thead>
  <tbody></tbody>
</table>
<noscript><p class="note">The image table needs JavaScript; the images are in the <code>images/</code> folder.</p></noscript>

<script type="application/json" id="report-data">{{ data|tojson }}</script>
<script>{{ script|safe }}</script>
{% endblock %}
""",
    "cgan": """{% extends "base" %}
{% block content %}
<h1>{{ title }}</h1>
<p class="muted">conditional GAN on digits · run <code>{{ run_dir }}</code></p>
<h2>Conditioning</h2>
<div class="cards">
{% for key, value in headline.items() %}
  <div class="card"><div class="label">{{ key }}</div><div class="value">{{ value|number }}</div></div>
{% endfor %}
</div>
<p class="muted">A classifier trained on real digits labels generated samples; conditioning accuracy is the share it
labels as the digit that was asked for (chance: 0.1).</p>
{% if per_digit %}
<table id="per-digit">
  <thead><tr><th>digit</th>{% for digit in per_digit %}<th class="num">{{ digit }}</th>{% endfor %}</tr></thead>
  <tbody><tr><td>accuracy</td>{% for value in per_digit.values() %}<td class="num">{{ value|number }}</td>{% endfor %}</tr></tbody>
</table>
{% endif %}
<h2>Samples</h2>
<p class="muted">Row k was asked for digit k; each column is another noise vector.</p>
<img class="plot" id="grid" src="grid.png" alt="generated digits, one row per requested digit">
{% include "losses" %}
{% endblock %}
""",
    "index": """{% extends "base" %}
{% block content %}
<h1>{{ title }}</h1>
<p class="muted">{{ rows|length }} experiments; the best value of each metric is in bold green.</p>
<table id="experiments">
  <thead><tr><th>experiment</th>{% for column in columns %}<th class="num">{{ column }}</th>{% endfor %}</tr></thead>
  <tbody>
  {% for row in rows %}
    <tr><td><a href="{{ row.href }}">{{ row.name }}</a></td>
    {%- for column in columns %}
      {%- set value = row.metrics.get(column) %}
      <td class="num{% if column in best and value == best[column] %} best{% endif %}">{{ value|number }}</td>
    {%- endfor %}</tr>
  {% endfor %}
  </tbody>
</table>
{% endblock %}
""",
}
