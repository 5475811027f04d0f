"""split: reference counts, determinism, groups kept together, and the user's files left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pix2pix.errors import UserError
from pix2pix.prep.split import assign_splits, group_names, split_folder, split_fractions


def make_files(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())  # the contents do not matter: split does not decode
    return folder


def layout(folder: Path) -> dict[str, list[str]]:
    return {split.name: sorted(p.name for p in split.iterdir()) for split in sorted(folder.iterdir()) if split.is_dir()}


@pytest.mark.parametrize(
    ("n", "train", "val", "test", "expected"),
    [
        (10, 0.8, None, 0.0, {"train": 8, "val": 2}),
        (10, 0.8, None, 0.1, {"train": 8, "val": 1, "test": 1}),
        (7, 0.5, 0.25, 0.25, {"train": 3, "val": 3, "test": 1}),  # int() like the reference; val takes the rest
        (100, 0.29, None, 0.0, {"train": 29, "val": 71}),  # 0.29 * 100 is 28.999... in floating point
        (7, 0.5, 0.0, 0.5, {"train": 4, "test": 3}),  # no val: its rest goes to train
        (7, 0.9, 0.0, 0.1, {"train": 7, "test": 0}),  # an empty split is written (and reported by the stage)
        (5, 0.0, 0.0, 1.0, {"test": 5}),
        (5, 0.0, 1.0, 0.0, {"val": 5}),
    ],
)
def test_counts_follow_the_reference(tmp_path, n, train, val, test, expected):
    make_files(tmp_path / "in", [f"{i}.png" for i in range(n)])
    result = split_folder(tmp_path / "in", tmp_path / "out", train_frac=train, val_frac=val, test_frac=test)
    assert result.counts == expected
    assert {name: len(files) for name, files in layout(tmp_path / "out").items()} == expected


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    make_files(tmp_path / "in", [f"img{i:02d}.jpg" for i in range(30)])
    split_folder(tmp_path / "in", tmp_path / "a", seed=3)
    split_folder(tmp_path / "in", tmp_path / "b", seed=3)
    split_folder(tmp_path / "in", tmp_path / "c", seed=4)
    assert layout(tmp_path / "a") == layout(tmp_path / "b")
    assert layout(tmp_path / "a") != layout(tmp_path / "c")


def test_assignment_is_pinned_for_seed_0():
    groups = group_names([f"{i}.png" for i in range(10)])
    assignment = assign_splits(groups, split_fractions(0.8, None, 0.0), seed=0)
    assert sorted(name for name, split in assignment.items() if split == "val") == ["1.png", "8.png"]


def test_groups_never_straddle_splits(tmp_path):
    names = [f"{photo}_{k:03d}.png" for photo in ("astronaut", "chelsea", "coffee", "rocket", "china", "flower") for k in range(5)]
    make_files(tmp_path / "in", names)
    for seed in range(5):
        result = split_folder(tmp_path / "in", tmp_path / f"out{seed}", seed=seed, group_by=r"^(.*)_\d+", train_frac=0.6, test_frac=0.2)
        assert result.groups == 6
        where: dict[str, set[str]] = {}
        for split, files in layout(tmp_path / f"out{seed}").items():
            for name in files:
                where.setdefault(name.rsplit("_", 1)[0], set()).add(split)
        assert all(len(splits) == 1 for splits in where.values()), where
        assert sum(result.counts.values()) == 30


def test_group_key_is_the_whole_match_without_a_group():
    groups = group_names(["a-1.png", "a-2.png", "b-1.png"], group_by=r"^[a-z]+")
    assert groups == {"a": ["a-1.png", "a-2.png"], "b": ["b-1.png"]}


def test_input_files_are_never_moved_or_changed_and_link_shares_them(tmp_path):
    make_files(tmp_path / "in", [f"{i}.png" for i in range(5)])
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "in").iterdir()}
    copied = split_folder(tmp_path / "in", tmp_path / "copy")
    linked = split_folder(tmp_path / "in", tmp_path / "link", link=True)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "in").iterdir()}
    assert before == after
    assert not copied.linked and linked.linked
    name = layout(tmp_path / "link")["train"][0]
    assert os.path.samefile(tmp_path / "link" / "train" / name, tmp_path / "in" / name)
    assert not os.path.samefile(tmp_path / "copy" / "train" / name, tmp_path / "in" / name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_frac": 0.8, "val_frac": 0.3}, "must be 1"),
        ({"train_frac": 0.9, "test_frac": 0.2}, "--val_frac must be between 0 and 1"),
        ({"group_by": r"^(x\d+)"}, "0.png: does not match --group_by"),
        ({"group_by": "("}, "not a valid regular expression"),
    ],
)
def test_bad_options_are_user_errors(tmp_path, kwargs, message):
    make_files(tmp_path / "in", ["0.png", "1.png"])
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        split_folder(tmp_path / "in", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_split_stage(tmp_path, assert_user_error, run_cli):
    make_files(tmp_path / "in", [f"{i}.png" for i in range(10)])
    result = run_cli("stages.split", "--input-dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"), "--test_frac", "0.1", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "copied 10 images" in result.stdout and "train 8, val 1, test 1" in result.stdout
    result = run_cli("stages.split", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "in"))
    assert_user_error(result, "must not be or contain the input folder")
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [f"{i}.png" for i in sorted(range(10), key=str)]


def test_group_pattern_sees_the_name_without_suffix():
    groups = group_names(["astronaut_001.png", "astronaut_002.jpg", "chelsea_001.png"], group_by=r"^(.+)_\d+$")
    assert groups == {"astronaut": ["astronaut_001.png", "astronaut_002.jpg"], "chelsea": ["chelsea_001.png"]}


def test_an_input_that_comes_split_keeps_its_own_splits(tmp_path, run_cli):
    """Like the pix2pix datasets' archives: train/, val/, test/ are kept, whatever the fractions say."""
    source = tmp_path / "facades"
    make_files(source / "train", ["1.jpg", "2.jpg", "3.jpg"])
    make_files(source / "val", ["1.jpg"])
    make_files(source / "test", ["1.jpg", "2.jpg"])
    result = split_folder(source, tmp_path / "out", train_frac=0.5, seed=3, group_by=r"^(\d)")
    assert result.kept and result.counts == {"train": 3, "val": 1, "test": 2}
    assert layout(tmp_path / "out") == {"test": ["1.jpg", "2.jpg"], "train": ["1.jpg", "2.jpg", "3.jpg"], "val": ["1.jpg"]}
    assert (tmp_path / "out" / "val" / "1.jpg").read_bytes() == (source / "val" / "1.jpg").read_bytes()

    make_files(tmp_path / "no-val" / "train", ["1.jpg", "2.jpg"])
    make_files(tmp_path / "no-val" / "test", ["3.jpg"])
    result = run_cli("stages.split", "-i", str(tmp_path / "no-val"), "-o", str(tmp_path / "out2"))
    assert result.returncode == 0, result.stderr
    assert "train 2, val 0, test 1 (the input's own splits" in result.stdout
    assert "split 'val' is empty; the input has no val/ folder" in result.stderr
    assert layout(tmp_path / "out2") == {"test": ["3.jpg"], "train": ["1.jpg", "2.jpg"]}
