"""Train/val/test splits that copy (or hard-link) files and keep related images together.

Unlike the reference's ``tools/split.py``, which moves the user's files, the input folder is only
read. With a group pattern, all crops of one photo (``astronaut_001.png``, ``astronaut_002.png``)
land in the same split, so validation never sees a near-copy of a training image.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pix2pix.data.images import list_images
from pix2pix.errors import UserError
from pix2pix.files import atomic_directory, check_output_separate

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitResult:
    counts: dict[str, int]
    groups: int
    linked: bool
    kept: bool = False  # the input's own train/val/test folders, not shares of a shuffle


def split_fractions(train: float, val: float | None, test: float) -> dict[str, float]:
    """Check the fractions; ``val=None`` means "the rest"."""
    if val is None:
        val = round(1.0 - train - test, 9)  # not -5e-17 for 1 - 0.8 - 0.2
    fractions = {"train": train, "val": val, "test": test}
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise UserError(f"--{name}_frac must be between 0 and 1, got {value:g}")
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise UserError(f"--train_frac + --val_frac + --test_frac must be 1, got {sum(fractions.values()):g}")
    return fractions


def group_names(names: list[str], group_by: str | None = None) -> dict[str, list[str]]:
    """File names by group key: the pattern's first group (or whole match) on the name without its
    suffix, so ``^(.+)_\\d+$`` groups ``astronaut_001.png``; each name alone without a pattern."""
    try:
        pattern = re.compile(group_by) if group_by else None
    except re.error as exc:
        raise UserError(f"--group_by {group_by!r}: not a valid regular expression ({exc})") from None
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        key = name
        if pattern is not None:
            match = pattern.search(Path(name).stem)
            if match is None:
                raise UserError(f"{name}: does not match --group_by {pattern.pattern!r}")
            key = match.group(1) if pattern.groups else match.group(0)
        groups.setdefault(key, []).append(name)
    return groups


def assign_splits(groups: dict[str, list[str]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Map each file name to a split, deterministically for a seed.

    Groups are shuffled, then laid end to end over the image count; a group goes to the split
    whose share contains its middle. Without groups that is exactly ``int(frac * N)`` train and
    test images like the reference (val takes the rest, or train where val's share is 0); with
    groups the shares are as close as whole groups allow.
    """
    keys = sorted(groups)
    total = sum(len(members) for members in groups.values())
    counts = {name: int(fractions[name] * total + 1e-9) for name in ("train", "test")}
    rest = next(name for name in ("val", "train", "test") if fractions[name] > 0)  # never a split of share 0
    counts[rest] = counts.get(rest, 0) + total - sum(counts.values())
    bounds = tuple(zip(SPLITS, itertools.accumulate(counts.get(name, 0) for name in SPLITS)))
    assignment: dict[str, str] = {}
    position = 0
    for index in np.random.default_rng(seed).permutation(len(keys)):
        members = groups[keys[index]]
        middle = position + len(members) / 2
        split = next(name for name, end in bounds if middle < end)
        assignment.update((member, split) for member in members)
        position += len(members)
    return assignment


def split_folder(
    input_dir: Path,
    output_dir: Path,
    *,
    train_frac: float = 0.8,
    val_frac: float | None = None,
    test_frac: float = 0.0,
    seed: int = 0,
    group_by: str | None = None,
    link: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SplitResult:
    """Write ``output_dir/{train,val,test}/`` (the splits with a non-zero fraction) atomically.

    An input that comes split (a ``train`` folder, like the pix2pix datasets' archives) keeps its
    own train/val/test: the fractions, seed and groups do not apply. ``progress(done, total)``
    after each file placed.
    """
    fractions = split_fractions(train_frac, val_frac, test_frac)
    check_output_separate(Path(output_dir), [Path(input_dir)])
    if (Path(input_dir) / "train").is_dir():
        return _keep_splits(Path(input_dir), Path(output_dir), link, progress)
    files = list_images(input_dir)
    groups = group_names([path.name for path in files], group_by)
    assignment = assign_splits(groups, fractions, seed)
    counts = {name: 0 for name in SPLITS if fractions[name] > 0}
    placements = [(path, assignment[path.name]) for path in files]
    for _, split in placements:
        counts[split] += 1
    with atomic_directory(Path(output_dir)) as staging:
        linked = _place_all(placements, staging, list(counts), link, progress)
    return SplitResult(counts=counts, groups=len(groups), linked=linked)


def _keep_splits(input_dir: Path, output_dir: Path, link: bool, progress: Callable[[int, int], None] | None) -> SplitResult:
    folders = {name: input_dir / name for name in SPLITS if (input_dir / name).is_dir()}
    files = {name: list_images(folder) for name, folder in folders.items()}  # an empty one is an error, as in the shuffle
    counts = {name: len(files.get(name, ())) for name in SPLITS}
    with atomic_directory(output_dir) as staging:
        linked = _place_all([(path, name) for name, paths in files.items() for path in paths], staging, list(files), link, progress)
    return SplitResult(counts=counts, groups=sum(counts.values()), linked=linked, kept=True)


def _place_all(
    placements: Sequence[tuple[Path, str]], staging: Path, splits: Sequence[str], link: bool, progress: Callable[[int, int], None] | None
) -> bool:
    """Make the ``splits`` folders in ``staging`` and place each (file, split) in its own; whether every file was linked."""
    for name in splits:
        (staging / name).mkdir()
    linked = link
    for done, (path, split) in enumerate(placements, 1):
        linked = _place(path, staging / split / path.name, linked)
        if progress:
            progress(done, len(placements))
    return linked


def _place(source: Path, target: Path, link: bool) -> bool:
    """Hard-link or copy; fall back to copying (and say so) where links cannot cross filesystems."""
    if link:
        try:
            os.link(source, target)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    shutil.copy2(source, target)
    return False
