"""Where a dataset comes from: a built-in generator, a pix2pix dataset, an archive URL or a folder.

One string names it (``params.yaml``'s ``source``), so switching the pipeline from built-in data
to the real thing is a one-value edit. What it names is decided before anything is read or fetched.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pix2pix.data.images import IMAGE_SUFFIXES
from pix2pix.errors import UserError
from pix2pix.files import atomic_directory, check_output_separate

from .download import REMOTE_DATASETS, archive_suffix

BUILTIN = ("synthetic-facades", "sample-photos")


@dataclass(frozen=True)
class Source:
    kind: Literal["builtin", "named", "url", "folder"]
    value: str  # the generator's or dataset's name, the URL, or the folder's path


def parse_source(source: str) -> Source:
    """What ``source`` names; a URL must be an http(s) or file archive, a folder must exist."""
    if source in BUILTIN:
        return Source("builtin", source)
    if source in REMOTE_DATASETS:
        return Source("named", source)
    if urllib.parse.urlparse(source).scheme in ("http", "https", "file"):
        archive_suffix(source)
        return Source("url", source)
    if Path(source).expanduser().is_dir():
        return Source("folder", str(Path(source).expanduser()))
    raise UserError(
        f"source {source!r}: not a built-in dataset ({', '.join(BUILTIN)}), a pix2pix dataset ({', '.join(REMOTE_DATASETS)}), "
        "an http(s):// or file:// archive URL, or an existing folder"
    )


def copy_folder(source: Path, target: Path) -> int:
    """Copy the images of ``source`` into ``target`` atomically, keeping sub-folders (train/val/test).

    A copy, not a link: the pipeline's outputs must not change when the user's folder does.
    """
    source, target = Path(source), Path(target)
    check_output_separate(target, [source])
    copied = 0
    with atomic_directory(target) as staging:
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(name for name in dirs if not name.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                relative = Path(root, name).relative_to(source)
                (staging / relative.parent).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(root, name), staging / relative)
                copied += 1
        if not copied:
            raise UserError(f"{source}: no images found ({', '.join(IMAGE_SUFFIXES)}), in it or its sub-folders")
    return copied
