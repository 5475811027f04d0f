"""An evaluation's summary (what ``pix2pix.infer.evaluate.evaluate`` returns) in two files of its results folder.

metrics.json holds the headline numbers alone, the means and the image count: DVC lists every key of
it as a `dvc metrics show` column. evaluation.json holds what they are read against: the eval mode,
which way each metric is better, the baselines' means and a hint model's curve (dozens of columns
there). Light on imports: training, evaluate and the reports all reach it, and none of their pages.
"""

from __future__ import annotations

import json
from pathlib import Path

from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text

METRICS_FILE, EVALUATION_FILE = "metrics.json", "evaluation.json"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def write_summary(folder: Path, summary: dict) -> None:
    """Write ``summary`` to ``folder``: its numbers to metrics.json, the rest to evaluation.json, each atomically."""
    headline = {key: value for key, value in summary.items() if is_number(value)}
    context = {key: value for key, value in summary.items() if key not in headline}
    atomic_write_text(Path(folder) / METRICS_FILE, json.dumps(headline, indent=2) + "\n")
    atomic_write_text(Path(folder) / EVALUATION_FILE, json.dumps(context, indent=2) + "\n")


def context_file(folder: Path) -> Path:
    """The file of a results or report folder that holds its directions and baselines (what errors about them
    name): evaluation.json, or in a folder without one (an older evaluation) metrics.json."""
    evaluation = Path(folder) / EVALUATION_FILE
    return evaluation if evaluation.is_file() else Path(folder) / METRICS_FILE


def read_summary(folder: Path) -> dict:
    """``write_summary``'s two files read back as one summary; an older evaluation's metrics.json alone holds it all."""
    summary, context = read_json(Path(folder) / METRICS_FILE), context_file(folder)
    if context.name == EVALUATION_FILE:
        details = read_json(context)
        if repeated := sorted(summary.keys() & details.keys()):
            raise UserError(f"{context}: {', '.join(map(repr, repeated))} also in {METRICS_FILE}: each key belongs in one of them")
        summary.update(details)
    return summary
