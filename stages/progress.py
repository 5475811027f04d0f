"""Rich progress bars on stderr, shown only on a terminal so logs and pipes stay clean."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Items per second, e.g. ``412.3 images/s``."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


@contextlib.contextmanager
def progress_bar(description: str, *, unit: str = "images", transfer: bool = False) -> Iterator[Callable[[int, int | None], None]]:
    """Yield ``update(done, total)``; ``transfer`` shows MB, MB/s and ETA instead of counts.

    No refresh thread: the bar redraws from ``update`` at most ten times a second, which keeps
    it cheap and makes forking worker processes safe.
    """
    console = Console(stderr=True)
    if transfer:
        columns = [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns = [MofNCompleteColumn(), _RateColumn(unit), TimeRemainingColumn()]
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        *columns,
        console=console,
        auto_refresh=False,
        transient=not transfer,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=None)
        last_refresh = 0.0

        def update(done: int, total: int | None) -> None:
            nonlocal last_refresh
            progress.update(task, completed=done, total=total)
            now = time.monotonic()
            if now - last_refresh >= 0.1 or done == total:
                progress.refresh()
                last_refresh = now

        yield update


@contextlib.contextmanager
def counting_bar(description: str, total: int, *, unit: str = "images") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``, the callback the library's loops call with how many items they finished."""
    with progress_bar(description, unit=unit) as update:
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            update(done, total)

        update(0, total)
        yield advance


def training_bar(*extra_columns) -> Progress:
    """A multi-task bar for training (loading images, then steps with rate and losses), on stderr.

    Unlike ``progress_bar`` it keeps rich's refresh thread: training forks no workers.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
