"""Checkpoint files: written atomically, read with ``weights_only=True``, checked before use.

A run folder holds ``checkpoint.pt`` (everything needed to resume: both networks, both
optimisers and schedulers, RNG state, position) and, once training finished,
``generator.pt`` (the generator and the options that describe it: enough to evaluate,
translate or export).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from pix2pix.errors import UserError
from pix2pix.files import atomic_write_bytes

FORMAT = "pix2pix-pipeline/1"
CHECKPOINT_NAME = "checkpoint.pt"
GENERATOR_NAME = "generator.pt"


def save(payload: dict[str, Any], path: Path) -> None:
    """Serialise to memory, then write through a temp file and rename: never a torn file."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint of this project; anything else is one clear ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a pix2pix-pipeline checkpoint (no '{FORMAT}' format marker)")
    return payload


def resolve(checkpoint: Path) -> Path:
    """A run folder or a file -> the file to load (a folder prefers the final generator)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        for name in (GENERATOR_NAME, CHECKPOINT_NAME):
            if (checkpoint / name).is_file():
                return checkpoint / name
        raise UserError(f"{checkpoint}: no {GENERATOR_NAME} or {CHECKPOINT_NAME} in this folder")
    if not checkpoint.exists():
        raise UserError(f"{checkpoint}: no such checkpoint file or run folder")
    return checkpoint
