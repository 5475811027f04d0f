"""Procedural building facades: a label map in the CMP facade palette and a photo rendered from it.

An offline stand-in for the CMP facades set (labels -> photo is pix2pix's showcase task): every
label class has a consistent look (glass with reflections in framed windows, shutters, railings,
stone mouldings) while each building varies its wall colour, texture, layout and light, so a
model has something real to learn. Image ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.data.images import encode_png
from pix2pix.errors import UserError
from pix2pix.files import atomic_directory

from .imageops import combine

# CMP facade base classes in label-id order (id = index + 1), coloured like the CMP label images
# (the jet colour map over the 12 ids).
CLASSES = (
    "background", "facade", "window", "door", "cornice", "sill",
    "balcony", "blind", "deco", "molding", "pillar", "shop",
)  # fmt: skip
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(len(CLASSES))


def _jet(n: int) -> np.ndarray:
    x = np.linspace(0.0, 1.0, n)
    channels = [np.clip(1.5 - np.abs(4 * x - centre), 0, 1) for centre in (3, 2, 1)]
    return np.round(np.stack(channels, axis=1) * 255).astype(np.uint8)


PALETTE = _jet(len(CLASSES))

WALL_COLOURS = np.array(
    [(0.82, 0.74, 0.60), (0.76, 0.60, 0.44), (0.70, 0.70, 0.68), (0.85, 0.80, 0.72), (0.72, 0.42, 0.33),
     (0.88, 0.84, 0.66), (0.78, 0.62, 0.58), (0.60, 0.62, 0.58), (0.90, 0.88, 0.84), (0.66, 0.50, 0.38)]
)  # fmt: skip
SHUTTER_COLOURS = np.array([(0.20, 0.38, 0.22), (0.42, 0.26, 0.14), (0.55, 0.57, 0.58), (0.22, 0.32, 0.48), (0.85, 0.85, 0.80)])
DOOR_COLOURS = np.array([(0.30, 0.18, 0.10), (0.18, 0.12, 0.08), (0.15, 0.25, 0.18), (0.35, 0.10, 0.08), (0.22, 0.22, 0.26)])
FRAME_COLOURS = np.array([(0.92, 0.92, 0.90), (0.30, 0.20, 0.12), (0.35, 0.36, 0.38), (0.85, 0.80, 0.70)])


class _Canvas:
    """A label map and a float photo painted together, so every label pixel has its look."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng = size, rng
        self.label = np.zeros((size, size), np.uint8)
        self.photo = np.zeros((size, size, 3), np.float32)
        self.yy, self.xx = np.mgrid[0:size, 0:size].astype(np.float32) / size

    def box(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
        """Pixel slices of a box given in fractions of the image, clipped; None if empty."""
        top, bottom = int(round(y0 * self.size)), int(round(y1 * self.size))
        left, right = int(round(x0 * self.size)), int(round(x1 * self.size))
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, self.size), min(right, self.size)
        return (slice(top, bottom), slice(left, right)) if bottom > top and right > left else None

    def paint(self, region, cls: int | None, colour) -> None:
        if region is None:
            return
        if cls is not None:
            self.label[region] = cls
        self.photo[region] = colour

    def noise(self, cells: int) -> np.ndarray:
        """Smooth noise in [-1, 1] with ``cells`` blobs across the image."""
        coarse = self.rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
        return np.asarray(Image.fromarray(coarse, "F").resize((self.size, self.size), Image.Resampling.BICUBIC))


def render_facade(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One building: ``(labels, photo)``, an ``(S, S)`` array of class ids and an ``(S, S, 3)`` uint8 photo."""
    if size < 32:
        raise UserError(f"--size {size}: synthetic facades need at least 32 px")
    canvas = _Canvas(size, rng)
    pixel = 1.0 / size
    # Sky above, neighbouring buildings at the sides: all "background" in CMP.
    sky_top, sky_bottom = rng.uniform(0.35, 0.6, 3) * (0.6, 0.75, 1.0), rng.uniform(0.75, 0.95, 3)
    canvas.photo[:] = sky_top + (sky_bottom - sky_top) * canvas.yy[..., None]
    left, right = rng.uniform(0.0, 0.12), 1.0 - rng.uniform(0.0, 0.12)
    top = rng.uniform(0.04, 0.2)
    neighbour = rng.uniform(0.35, 0.6) * np.array([1.0, 0.97, 0.92])
    for x0, x1 in ((0.0, left), (right, 1.0)):
        canvas.paint(canvas.box(top - rng.uniform(-0.05, 0.1), 1.0, x0, x1), None, neighbour * rng.uniform(0.8, 1.1))

    # The wall: per-building colour, stucco or brick texture.
    wall = WALL_COLOURS[rng.integers(len(WALL_COLOURS))] * rng.uniform(0.9, 1.08, 3)
    texture = 0.06 * canvas.noise(6) + 0.03 * canvas.noise(24)
    if rng.random() < 0.35:
        course = max(2, int(size * rng.uniform(0.012, 0.02)))
        texture = texture - 0.08 * (np.arange(size) % course == 0)[:, None]
    wall_region = canvas.box(top, 1.0, left, right)
    canvas.label[wall_region] = FACADE
    canvas.photo[wall_region] = (wall * (1.0 + texture[..., None]))[wall_region]
    stone = np.clip(wall * 1.18 + 0.05, 0, 1)

    # Cornice on top, storeys below it, a taller ground floor.
    cornice_h = rng.uniform(0.025, 0.05)
    _band(canvas, top - 0.2 * cornice_h, top + cornice_h, left - 0.015, right + 0.015, CORNICE, stone)
    floors = int(rng.integers(3, 7))
    ground_ratio = rng.uniform(1.1, 1.45)
    floor_h = (1.0 - top - cornice_h) / (floors - 1 + ground_ratio)
    columns = int(rng.integers(2, 7))
    pitch = (right - left) / columns
    win_w, win_h = pitch * rng.uniform(0.38, 0.62), floor_h * rng.uniform(0.45, 0.68)
    win_top = floor_h * rng.uniform(0.14, 0.26)
    style = {
        "frame": FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))],
        "glass": rng.uniform(0.12, 0.25) * np.array([0.9, 1.0, 1.15]),
        "sky": sky_bottom,
        "shutter": SHUTTER_COLOURS[rng.integers(len(SHUTTER_COLOURS))],
        "blinds": rng.choice(["none", "shutters", "roller"], p=[0.4, 0.35, 0.25]),
        "sills": rng.random() < 0.7,
        "deco": rng.random() < 0.4,
        "stone": stone,
    }
    if rng.random() < 0.35:  # pillars framing the facade
        pillar_w = rng.uniform(0.025, 0.045)
        for x0 in (left, right - pillar_w):
            _pillar(canvas, top + cornice_h, 1.0, x0, x0 + pillar_w, stone)
    balconies = rng.random() < 0.5
    for floor in range(floors - 1):
        y = top + cornice_h + floor * floor_h
        if floor and rng.random() < 0.5:
            _band(canvas, y - 0.01, y + 0.006, left, right, MOLDING, stone * 0.96)
        for column in range(columns):
            x = left + (column + 0.5) * pitch - win_w / 2
            _window(canvas, y + win_top, y + win_top + win_h, x, x + win_w, style)
        if balconies and floor and rng.random() < 0.45:
            y0 = y + win_top + win_h * 0.62
            _balcony(canvas, y0, y + win_top + win_h + 2 * pixel, left + 0.3 * pitch - win_w / 2, right - 0.3 * pitch + win_w / 2)

    ground = top + cornice_h + (floors - 1) * floor_h
    _band(canvas, ground - 0.008, ground + 0.012, left, right, MOLDING, stone * 0.93)
    door_column = int(rng.integers(columns))
    door_w = min(pitch * 0.8, win_w * rng.uniform(1.0, 1.4))
    door_x = left + (door_column + 0.5) * pitch - door_w / 2
    _door(canvas, 1.0 - floor_h * ground_ratio * rng.uniform(0.7, 0.85), 1.0, door_x, door_x + door_w)
    has_shop = rng.random() < 0.6
    for column in range(columns):
        if column == door_column:
            continue
        x = left + (column + 0.5) * pitch
        if has_shop:
            _shop(canvas, ground + floor_h * 0.15, 1.0 - 0.01, x - pitch * 0.42, x + pitch * 0.42)
        else:
            y0 = ground + floor_h * 0.3
            _window(canvas, y0, y0 + win_h, x - win_w / 2, x + win_w / 2, style)

    # Light: a sun from one side, darker towards the street, camera vignetting and sensor noise.
    side = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.2)
    light = 1.0 + side * (canvas.xx - 0.5) - rng.uniform(0.0, 0.12) * canvas.yy
    light -= 0.12 * ((canvas.xx - 0.5) ** 2 + (canvas.yy - 0.5) ** 2)
    photo = canvas.photo * light[..., None] * rng.uniform(0.9, 1.1)
    photo += rng.normal(0.0, 0.012, photo.shape).astype(np.float32)
    return canvas.label, np.clip(photo * 255 + 0.5, 0, 255).astype(np.uint8)


def _band(canvas: _Canvas, y0, y1, x0, x1, cls: int, colour) -> None:
    """A horizontal stone band (cornice, moulding, sill) with its shadow on the wall below."""
    region = canvas.box(y0, y1, x0, x1)
    if region is None:
        return
    canvas.label[region] = cls
    rows = region[0].stop - region[0].start
    canvas.photo[region] = colour * np.linspace(1.05, 0.85, rows, dtype=np.float32)[:, None, None]
    shadow = canvas.box(y1, y1 + 0.012, x0, x1)
    if shadow is not None:
        canvas.photo[shadow] *= np.linspace(0.6, 0.95, shadow[0].stop - shadow[0].start, dtype=np.float32)[:, None, None]


def _pillar(canvas: _Canvas, y0, y1, x0, x1, colour) -> None:
    region = canvas.box(y0, y1, x0, x1)
    if region is None:
        return
    canvas.label[region] = PILLAR
    columns = region[1].stop - region[1].start
    shade = 0.8 + 0.25 * np.sin(np.linspace(0.1, np.pi - 0.1, columns, dtype=np.float32))
    canvas.photo[region] = colour * shade[None, :, None]


def _window(canvas: _Canvas, y0, y1, x0, x1, style: dict) -> None:
    """Framed glass reflecting the sky, with mullions, a sill, shutters or a blind, a pediment."""
    region = canvas.box(y0, y1, x0, x1)
    if region is None:
        return
    rng = canvas.rng
    rows, columns = region[0].stop - region[0].start, region[1].stop - region[1].start
    canvas.label[region] = WINDOW
    v = np.linspace(0, 1, rows, dtype=np.float32)[:, None]
    u = np.linspace(0, 1, columns, dtype=np.float32)[None, :]
    reflection = np.clip(1.2 - 1.6 * np.abs(u + 0.6 * v - rng.uniform(0.3, 1.0)), 0, 1) * rng.uniform(0.2, 0.6)
    glass = style["glass"] * (1.0 - reflection[..., None]) + style["sky"] * reflection[..., None]
    frame = max(1, round(columns * 0.09))
    for edge in (np.s_[:frame], np.s_[-frame:], np.s_[:, :frame], np.s_[:, -frame:]):
        glass[edge] = style["frame"]
    bar = max(1, frame // 2)
    glass[:, columns // 2 - bar // 2 : columns // 2 - bar // 2 + bar] = style["frame"]
    glass[rows // 3 : rows // 3 + bar] = style["frame"]
    glass[frame : frame + max(1, frame // 2), frame:-frame] *= 0.55  # the reveal's shadow on the glass
    canvas.photo[region] = glass

    height, width = y1 - y0, x1 - x0
    if style["blinds"] == "roller" and rng.random() < 0.6:
        _slats(canvas, canvas.box(y0, y0 + height * rng.uniform(0.2, 0.7), x0, x1), style["shutter"])
    elif style["blinds"] == "shutters":
        for sx0, sx1 in ((x0 - 0.5 * width, x0), (x1, x1 + 0.5 * width)):
            _slats(canvas, canvas.box(y0, y1, sx0, sx1), style["shutter"])
    if style["sills"]:
        _band(canvas, y1, y1 + max(0.012, 0.08 * height), x0 - 0.12 * width, x1 + 0.12 * width, SILL, style["stone"])
    if style["deco"]:
        _band(canvas, y0 - max(0.02, 0.15 * height), y0, x0 - 0.1 * width, x1 + 0.1 * width, DECO, style["stone"] * 0.95)


def _slats(canvas: _Canvas, region, colour) -> None:
    if region is None:
        return
    canvas.label[region] = BLIND
    rows = region[0].stop - region[0].start
    canvas.photo[region] = colour * np.where(np.arange(rows) % 3 == 2, 0.7, 1.0).astype(np.float32)[:, None, None]


def _balcony(canvas: _Canvas, y0, y1, x0, x1) -> None:
    """Dark iron railing in front of the wall: a top rail and bars."""
    region = canvas.box(y0, y1, x0, x1)
    if region is None:
        return
    canvas.label[region] = BALCONY
    iron = np.array([0.12, 0.12, 0.13], np.float32)
    behind = canvas.photo[region] * 0.75
    columns = region[1].stop - region[1].start
    bars = (np.arange(columns) % 4 == 0)[None, :, None]
    railing = np.where(bars, iron, behind)
    railing[: max(1, railing.shape[0] // 6)] = iron
    railing[-max(1, railing.shape[0] // 8) :] = iron * 1.5
    canvas.photo[region] = railing


def _door(canvas: _Canvas, y0, y1, x0, x1) -> None:
    region = canvas.box(y0, y1, x0, x1)
    if region is None:
        return
    rng = canvas.rng
    canvas.label[region] = DOOR
    colour = DOOR_COLOURS[rng.integers(len(DOOR_COLOURS))] * rng.uniform(0.85, 1.15)
    rows, columns = region[0].stop - region[0].start, region[1].stop - region[1].start
    wood = colour * (1.0 + 0.08 * np.sin(np.arange(columns, dtype=np.float32) * 1.7))[None, :, None] * np.ones((rows, 1, 1))
    inset = max(1, columns // 6)
    wood[inset:-inset, inset:-inset] *= 0.8  # panels
    wood[:, columns // 2] *= 0.6
    canvas.photo[region] = wood


def _shop(canvas: _Canvas, y0, y1, x0, x1) -> None:
    """A shop front: a coloured sign band over a lit window with goods behind it."""
    region = canvas.box(y0, y1, x0, x1)
    if region is None:
        return
    rng = canvas.rng
    canvas.label[region] = SHOP
    rows, columns = region[0].stop - region[0].start, region[1].stop - region[1].start
    goods = rng.uniform(0.2, 0.9, (max(2, rows // 6), max(2, columns // 6), 3)).astype(np.float32)
    lit = np.asarray(Image.fromarray((goods * 255).astype(np.uint8)).resize((columns, rows), Image.Resampling.NEAREST), np.float32) / 255
    front = lit * 0.55 + np.array([0.35, 0.28, 0.15], np.float32)
    sign = max(1, rows // 5)
    front[:sign] = rng.uniform(0.1, 0.9, 3)
    front[sign : sign + 1] = 0.1
    canvas.photo[region] = np.clip(front, 0, 1)


def facade_pair(seed: int, index: int, size: int = 256) -> tuple[Image.Image, Image.Image]:
    """The ``index``-th building for ``seed``: (colour-coded label image, photo)."""
    labels, photo = render_facade(np.random.default_rng([seed, index]), size)
    return Image.fromarray(PALETTE[labels]), Image.fromarray(photo)


def write_synthetic_facades(
    target: Path,
    *,
    count: int = 400,
    size: int = 256,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``target/cmp_NNNN.png`` A|B pairs (and ``classes.txt``) atomically.

    Laid out like the real CMP facades (A = photo, B = labels; train BtoA for labels -> photo), so
    either one feeds the same pipeline. Unlike the real archive it has no train/val/test folders:
    ``split`` divides it.
    """
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    target = Path(target)
    with atomic_directory(target) as staging:
        (staging / "classes.txt").write_text(
            "".join(f"{i + 1} {name} {r} {g} {b}\n" for i, (name, (r, g, b)) in enumerate(zip(CLASSES, PALETTE.tolist())))
        )
        for index in range(count):
            label, photo = facade_pair(seed, index, size)
            (staging / f"cmp_{index + 1:04d}.png").write_bytes(encode_png(combine(photo, label)))
            if progress:
                progress(index + 1, count)
    return target
