"""Progress of the long stages on stderr: a rich bar on a terminal, whole timestamped lines otherwise.

Logs (SLURM, pipes) get one line every PIX2PIX_PROGRESS_SECONDS seconds (10 by default) and one at
the end, each with count/total, rate and ETA, and never a bar's fragment. On a terminal the bar keeps
the count, rate and ETA whole at any width: the details (a training's losses) go first, then the bar
and the description shrink.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from rich.console import Console
from rich.filesize import decimal
from rich.progress import Progress, ProgressColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pix2pix.errors import UserError

SECONDS_VARIABLE = "PIX2PIX_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0
BAR_REFRESH_SECONDS = 0.1
MIN_BAR_WIDTH, MAX_BAR_WIDTH = 10, 40


def line_seconds() -> float:
    """Seconds between two progress lines in a log, from PIX2PIX_PROGRESS_SECONDS (0: a line per update)."""
    text = os.environ.get(SECONDS_VARIABLE)
    if text is None:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0 or math.isinf(seconds):
        raise UserError(f"{SECONDS_VARIABLE}={text!r}: expected the seconds between progress lines, a number >= 0")
    return seconds


def timestamp() -> str:
    """Local time as logs show it: ``2026-12-06 21:57:32``."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def log_line(message: str) -> None:
    """A whole timestamped line on stderr, flushed at once so a log shows it as it happens."""
    sys.stderr.write(f"{timestamp()} {message}\n")
    sys.stderr.flush()


class Meter:
    """How far a stage is through a count (images, steps, bytes) towards ``total`` (None: unknown), and its display.

    ``start``: the count it starts from (a resumed training's step), left out of the rate. ``transfer``
    counts bytes. ``seconds`` between log lines defaults to PIX2PIX_PROGRESS_SECONDS. The bar draws only
    from ``update`` (no refresh thread), so worker processes can be forked while it shows.
    """

    def __init__(
        self, description: str, total: int | None = None, *, unit: str = "images", transfer: bool = False, start: int = 0,
        seconds: float | None = None, console: Console | None = None,
    ):  # fmt: skip
        self.description, self.total, self.unit, self.transfer = description, total, unit, transfer
        self.done = self._start = start
        self.details = ""
        self._seconds = line_seconds() if seconds is None else seconds
        self._started = self._shown_at = self._updated_at = time.monotonic()
        self._unshown = False  # an update since the display last showed the count
        self._console = console or Console(stderr=True)
        self._bar = None
        if self._console.is_terminal:
            self._bar = Progress(_MeterColumn(self), console=self._console, auto_refresh=False, transient=not transfer)
            self._bar.add_task(description, total=None)
            self._bar.start()

    def update(self, done: int, total: int | None = None, *, description: str | None = None, details: str | None = None) -> None:
        """Count ``done`` so far (of ``total``, if it is known only now); ``details`` follow the ETA."""
        self.done = done
        self.total = total if total is not None else self.total
        self.description = description if description is not None else self.description
        self.details = details if details is not None else self.details
        self._updated_at = time.monotonic()
        self._unshown = True
        finished = self.total is not None and done >= self.total
        since = self._updated_at - self._shown_at
        if finished or since >= (BAR_REFRESH_SECONDS if self._bar else self._seconds):
            self._show()

    def advance(self, count: int) -> None:
        """Count ``count`` more: the callback the library's loops call with how many items they finished."""
        self.update(self.done + count)

    def note(self, message: str) -> None:
        """A message of its own line: above the bar, or a timestamped log line."""
        if self._console.is_terminal:
            self._console.print(message, markup=False, highlight=False)
        else:
            log_line(message)

    def close(self, finished: bool = True) -> None:
        """Take the bar down; a log gets its last count if it has not shown it (not after an error: the error says it)."""
        if self._bar:
            self._bar.refresh()
            self._bar.stop()
            self._bar = None
        elif finished and self._unshown:
            self._show()
        self._unshown = False

    def rate(self) -> float | None:
        """Counted per second from the meter's start to the last update; None before the first count."""
        elapsed = self._updated_at - self._started
        return (self.done - self._start) / elapsed if self.done > self._start and elapsed > 0 else None

    def figures(self) -> str:
        """``done/total rate eta H:MM:SS``, what the display never drops."""
        rate, total = self.rate(), self.total
        if self.transfer:
            count = f"{decimal(self.done)}/{decimal(total) if total is not None else '?'}"
            speed = f"{decimal(int(rate))}/s" if rate else "- B/s"
        else:
            count = f"{self.done}/{total if total is not None else '?'}"
            speed = f"{rate:.1f} {self.unit}/s" if rate and rate >= 1 else f"{rate:.2g} {self.unit}/s" if rate else f"- {self.unit}/s"
        eta = timedelta(seconds=round(max(total - self.done, 0) / rate)) if rate and total is not None else "-:--:--"
        return f"{count} {speed} eta {eta}"

    def bar_line(self) -> Table:
        """The bar's line within the console's width: description, bar, figures, then details while they fit."""
        figures = self.figures()
        room = self._console.width - len(figures) - 1
        description = Text(self.description)
        description.truncate(max(room // 3, 1), overflow="ellipsis")
        bar_width = room - description.cell_len - 1
        details = self.details if self.details and bar_width - len(self.details) - 1 >= MIN_BAR_WIDTH else ""
        bar_width = min(bar_width - (len(details) + 1 if details else 0), MAX_BAR_WIDTH)
        line = Table.grid(padding=(0, 1))
        cells = [description, ProgressBar(total=self.total, completed=self.done, width=max(bar_width, 1)), Text(figures)]
        line.add_row(*cells, *([Text(details, style="dim")] if details else []))
        return line

    def _show(self) -> None:
        if self._bar:
            self._bar.refresh()
        else:
            log_line(" ".join(part for part in (self.description, self.figures(), self.details) if part))
        self._shown_at, self._unshown = time.monotonic(), False


class _MeterColumn(ProgressColumn):
    """The whole bar line, laid out by its meter for the console's width."""

    def __init__(self, meter: Meter):
        super().__init__()
        self.meter = meter

    def render(self, task) -> Table:
        return self.meter.bar_line()


@contextlib.contextmanager
def progress_meter(description: str, total: int | None = None, **options) -> Iterator[Meter]:
    """A ``Meter`` (same arguments) closed on the way out."""
    meter = Meter(description, total, **options)
    finished = False
    try:
        yield meter
        finished = True
    finally:
        meter.close(finished)


@contextlib.contextmanager
def progress_bar(description: str, *, unit: str = "images", transfer: bool = False) -> Iterator[Callable[[int, int | None], None]]:
    """Yield ``update(done, total)``; ``transfer`` counts bytes (MB, MB/s)."""
    with progress_meter(description, unit=unit, transfer=transfer) as meter:
        yield meter.update


@contextlib.contextmanager
def counting_bar(description: str, total: int, *, unit: str = "images") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``, the callback the library's loops call with how many items they finished."""
    with progress_meter(description, total, unit=unit) as meter:
        yield meter.advance
