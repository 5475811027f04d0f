"""Checkpoint files: written atomically, read with ``weights_only=True``, checked before use.

A run folder holds ``checkpoint.pt`` (everything needed to resume: both networks, both
optimisers and schedulers, RNG state, position) and, once training finished,
``generator.pt`` (the generator and the options that describe it: enough to evaluate,
translate or export). A run validated during training (``train --val-dir``) also holds
``best.pt``, in generator.pt's format: the generator of the best validation score so far.

Each file carries the sha256 of its contents (the values, not the file's bytes), checked on
load: torch's zip reader does not check its own CRCs, so a flipped bit in the weights would
otherwise load silently. Files written before the checksum existed load without the check.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from pix2pix.errors import UserError
from pix2pix.files import atomic_write_bytes

FORMAT = "pix2pix-pipeline/1"
CHECKPOINT_NAME = "checkpoint.pt"
GENERATOR_NAME = "generator.pt"
BEST_NAME = "best.pt"
# A run folder's files for each choice of --which, in order of preference; None: best if there is one.
WHICH_FILES: Mapping[str | None, tuple[str, ...]] = MappingProxyType(
    {"best": (BEST_NAME,), "last": (GENERATOR_NAME, CHECKPOINT_NAME), None: (BEST_NAME, GENERATOR_NAME, CHECKPOINT_NAME)}
)
CHECKSUM_KEY = "sha256"

# Top-level entries a reader relies on, and their types: a model to use, and a run to resume (where
# the loop stood; the models' and optimisers' own states are checked as they load, see ``restoring``).
MODEL_FIELDS: Mapping[str, type] = MappingProxyType({"config": dict, "architecture": dict, "generator": dict})
RESUME_FIELDS: Mapping[str, type] = MappingProxyType({**MODEL_FIELDS, "rng": dict, "step": int, "epoch": int, "batch_index": int})


def save(payload: dict[str, Any], path: Path) -> None:
    """Serialise to memory, then write through a temp file and rename: never a torn file."""
    contents = {"format": FORMAT, **payload}
    buffer = io.BytesIO()
    torch.save({**contents, CHECKSUM_KEY: contents_sha256(contents)}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load(path: Path, map_location: str | torch.device = "cpu", fields: Mapping[str, type] = MappingProxyType({})) -> dict[str, Any]:
    """Load a checkpoint of this project, intact and holding ``fields``; anything else is one clear ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a pix2pix-pipeline checkpoint (no '{FORMAT}' format marker)")
    recorded = payload.pop(CHECKSUM_KEY, None)
    if recorded is not None and recorded != contents_sha256(payload):
        raise UserError(f"{path}: damaged checkpoint: its contents do not match the sha256 recorded when it was saved")
    for key, kind in fields.items():
        value = payload.get(key)
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
            found = "missing" if key not in payload else f"{type(value).__name__} {value!r:.60}"
            expected = "a count >= 0" if kind is int else f"a {kind.__name__}"
            raise UserError(f"{path}: damaged checkpoint: {key!r} should be {expected}, found {found}")
    return payload


@contextlib.contextmanager
def restoring(path: Path, what: str) -> Iterator[None]:
    """State from ``path`` that does not fit what it is loaded into (a model, an optimiser, the RNG)
    is one line naming the file and ``what`` was restored, not a traceback from deep inside torch."""
    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise UserError(f"{path}: the checkpoint does not hold a matching {what} ({type(exc).__name__}: {first_line(exc)})") from None


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one short line (torch's run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def contents_sha256(payload: Any) -> str:
    """A digest of nested dicts, lists and tensors by value: the same for equal contents, whatever the file layout."""
    digest = hashlib.sha256()
    _feed(digest, payload)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}\n".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}\n".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r}\n".encode())


def resolve(checkpoint: Path, which: str | None = None) -> Path:
    """A run folder or a file -> the file to load. In a folder ``which`` picks best.pt ("best") or the
    last generator ("last": generator.pt, else the checkpoint of a run still training); by default
    best.pt where validation wrote one. A file is used as is."""
    if which not in WHICH_FILES:
        raise UserError(f"--which {which!r}: expected best or last")
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        names = WHICH_FILES[which]
        for name in names:
            if (checkpoint / name).is_file():
                return checkpoint / name
        hint = " (train --val-dir writes it)" if which == "best" else ""
        raise UserError(f"{checkpoint}: no {' or '.join(names)} in this folder{hint}")
    if not checkpoint.exists():
        raise UserError(f"{checkpoint}: no such checkpoint file or run folder")
    return checkpoint
