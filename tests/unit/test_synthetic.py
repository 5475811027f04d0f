"""Built-in offline datasets: synthetic CMP-style facades and crops of the bundled sample photos."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from PIL import Image

from pix2pix.errors import UserError
from pix2pix.prep import samples, synthetic
from pix2pix.prep.split import split_folder


def test_facade_palette_is_the_twelve_cmp_classes():
    assert synthetic.CLASSES[:3] == ("background", "facade", "window") and len(synthetic.CLASSES) == 12
    assert len({tuple(colour) for colour in synthetic.PALETTE.tolist()}) == 12
    assert synthetic.PALETTE[synthetic.BACKGROUND].tolist() == [0, 0, 128]
    assert synthetic.PALETTE[synthetic.SHOP].tolist() == [128, 0, 0]


def test_facades_are_deterministic_per_seed_and_index():
    label, photo = synthetic.facade_pair(seed=5, index=2, size=64)
    again_label, again_photo = synthetic.facade_pair(seed=5, index=2, size=64)
    assert np.array_equal(np.asarray(label), np.asarray(again_label))
    assert np.array_equal(np.asarray(photo), np.asarray(again_photo))
    other = synthetic.facade_pair(seed=6, index=2, size=64)[1]
    assert not np.array_equal(np.asarray(photo), np.asarray(other))


def test_facade_layout_and_formats(tmp_path):
    """A|B pairs like the real CMP facades: A = photo, B = labels in the CMP palette."""
    target = synthetic.write_synthetic_facades(tmp_path / "facades", count=3, size=48, seed=0)
    assert target == tmp_path / "facades"
    names = [f"cmp_{i:04d}.png" for i in (1, 2, 3)]
    assert sorted(p.name for p in target.glob("*.png")) == names
    assert len((target / "classes.txt").read_text().splitlines()) == 12
    palette = {tuple(colour) for colour in synthetic.PALETTE.tolist()}
    for index, name in enumerate(names):
        pair = Image.open(target / name)
        assert pair.mode == "RGB" and pair.size == (96, 48)
        label, photo = synthetic.facade_pair(0, index, 48)
        assert np.array_equal(np.asarray(pair)[:, :48], np.asarray(photo))
        assert np.array_equal(np.asarray(pair)[:, 48:], np.asarray(label))
        colours = {tuple(c) for c in np.asarray(label).reshape(-1, 3).tolist()}
        assert colours <= palette
        assert {tuple(synthetic.PALETTE[c].tolist()) for c in (synthetic.BACKGROUND, synthetic.FACADE, synthetic.WINDOW)} <= colours


def test_image_i_does_not_depend_on_the_count(tmp_path):
    few = synthetic.write_synthetic_facades(tmp_path / "few", count=2, size=40, seed=1)
    more = synthetic.write_synthetic_facades(tmp_path / "more", count=4, size=40, seed=1)
    for name in ("cmp_0001.png", "cmp_0002.png"):
        assert (few / name).read_bytes() == (more / name).read_bytes()


def test_photo_follows_the_labels():
    """Each class has its own look, so labels -> photo is learnable: glass is darker than the wall."""
    labels, photo = synthetic.render_facade(np.random.default_rng(0), 128)
    gray = photo.astype(float).mean(axis=2)
    classes = set(np.unique(labels).tolist())
    assert {synthetic.BACKGROUND, synthetic.FACADE, synthetic.WINDOW, synthetic.DOOR} <= classes
    windows = labels == synthetic.WINDOW
    assert np.median(gray[windows]) < np.median(gray[labels == synthetic.FACADE])
    assert photo[labels == synthetic.FACADE].std() > 1  # textured, not flat


def test_facades_are_fast():
    start = time.perf_counter()
    for index in range(20):
        synthetic.facade_pair(0, index, 256)
    assert time.perf_counter() - start < 5  # about 0.3 s; 100 images at 256 px in a few seconds


def test_facades_refuse_tiny_sizes_and_empty_counts(tmp_path):
    with pytest.raises(UserError, match="at least 32 px"):
        synthetic.facade_pair(0, 0, 16)
    with pytest.raises(UserError, match="--count"):
        synthetic.write_synthetic_facades(tmp_path, count=0)


def test_sample_photos_named_after_their_photo_and_deterministic(tmp_path):
    assert len(samples.source_photos()) >= 8
    first = samples.write_sample_photos(tmp_path / "a", count=12, size=32, seed=0)
    second = samples.write_sample_photos(tmp_path / "b", count=12, size=32, seed=0)
    files = sorted(first.glob("*.png"))
    assert len(files) == 12
    assert all(re.fullmatch(r"[a-z_]+_\d{3}\.png", p.name) for p in files)
    assert {"astronaut_000.png", "astronaut_001.png", "chelsea_000.png"} <= {p.name for p in files}
    for path in files:
        assert path.read_bytes() == (second / path.name).read_bytes()
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (32, 32)
    colourful = [np.asarray(Image.open(p), float).std(axis=2).mean() for p in files]
    assert np.median(colourful) > 5  # colour photos, not gray


def test_sample_photo_crops_split_by_photo(tmp_path):
    folder = samples.write_sample_photos(tmp_path / "photos", count=30, size=16, seed=0)
    split_folder(folder, tmp_path / "split", group_by=r"^(.*)_\d+", seed=0)
    train = {p.name.rsplit("_", 1)[0] for p in (tmp_path / "split" / "train").iterdir()}
    val = {p.name.rsplit("_", 1)[0] for p in (tmp_path / "split" / "val").iterdir()}
    assert train and val and not train & val


def test_download_stage_builds_both_offline(tmp_path, run_cli):
    result = run_cli("stages.download", "synthetic-facades", "--count", "2", "--size", "48", "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "synthetic-facades").glob("*.png"))) == 2
    result = run_cli("stages.download", "sample-photos", "--count", "3", "--size", "24", "--seed", "2", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "sample-photos").glob("*.png"))) == 3


def test_download_stage_rejects_options_that_do_not_apply(tmp_path, assert_user_error, run_cli):
    assert_user_error(run_cli("stages.download", "facades", "--count", "3", "-o", str(tmp_path)), "--count")
    assert_user_error(run_cli("stages.download", "synthetic-facades", "--sha256", "a" * 64, "-o", str(tmp_path)), "--sha256 applies")
    assert list(tmp_path.iterdir()) == []
