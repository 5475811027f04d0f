"""What every stage shares: user errors as one line with exit code 2, the rich console, and --which."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from pix2pix.errors import UserError
from pix2pix.processes import signal_on_launcher_death
from stages.options import normalized

F = TypeVar("F", bound=Callable)

EXIT_USER_ERROR = 2

# Which generator of a run folder evaluate, translate, export and serve load (pix2pix.checkpoint.resolve).
WhichCheckpoint = Annotated[
    str | None,
    typer.Option(
        "--which",
        help="In a run folder: best (best.pt, the best validation score: train --val-dir) or last (generator.pt) \\[default: best.pt when there is one]. A file given as --checkpoint is used as is.",
        rich_help_panel="Paths",
        show_default=False,
    ),
]


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (code 2)."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(EXIT_USER_ERROR)


def user_errors(command: F) -> F:
    """Turn a library ``UserError``, and an OSError naming its file (a full disk, a read-only or
    failing file system, no permission), into one line on stderr and exit code 2 (no traceback).

    Under `dvc repro` (which sets DVC_ROOT) the stage also ends when DVC does: a killed `dvc`
    would otherwise leave it running, unseen. It gets SIGTERM, which a training answers with a
    checkpoint, so the next `dvc repro` resumes."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if os.environ.get("DVC_ROOT"):
            signal_on_launcher_death(signal.SIGTERM)
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise fail(os_error_message(exc)) from None

    return wrapper  # type: ignore[return-value]


def os_error_message(exc: OSError) -> str:
    """``PATH: REASON`` (``SOURCE -> TARGET: REASON`` for a copy, link or rename), in the OS's words."""
    names = (exc.filename, exc.filename2)
    paths = " -> ".join(os.fsdecode(name) if isinstance(name, bytes) else str(name) for name in names if name is not None)
    return f"{paths}: {exc.strerror or exc}"


class StageApp(typer.Typer):
    """A Typer app whose commands accept ``--an_option`` for ``--an-option``, and the aliases of ``@with_options``."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(function):
            registered = register(function)
            info = self.registered_commands[-1]
            normalize = getattr(function, "token_normalize_func", normalized)
            info.context_settings = {**(info.context_settings or {}), "token_normalize_func": normalize}
            return registered

        return decorator


def stage_app(help: str) -> typer.Typer:
    """A one-command Typer app, so ``python -m stages.NAME --help`` works like ``pix2pix NAME``."""
    return StageApp(help=help, add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)
