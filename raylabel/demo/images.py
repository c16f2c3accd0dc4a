"""Synthetic image data drop for the demo and the tests.

Why: the demo and the end-to-end tests need an image workload that behaves like a real
one without shipping a data set. A small CNN should learn the classes quickly on the
easy items, while a controlled share of hard / ambiguous items spreads the classifier's
confidences so calibration, per-class thresholds and the review sample have something
real to do. The drop also mixes file formats and plants undecodable files, as real
drops do, so the error table is exercised.

Everything is a pure function of :class:`ImageDemoSpec`: the same spec writes
byte-identical files.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from raylabel.demo.shapes import EXTRA_SHAPES, PRETRAIN_SHAPES, outline_points

DEFAULT_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "hexagon")

# Ten shapes for harder benchmarks (the small-seed bench uses all of them); the demo keeps six.
ALL_SHAPES: tuple[str, ...] = (*DEFAULT_CLASSES, *EXTRA_SHAPES)

# Shapes this module can draw; spec.classes must be a subset (any order).
_KNOWN_SHAPES: frozenset[str] = frozenset(ALL_SHAPES + PRETRAIN_SHAPES)

# Ways an item is made hard; a hard item gets one of them, sometimes plus "ambiguous".
_HARD_MODES: tuple[str, ...] = ("small", "low_contrast", "occluded", "blur_noise", "ambiguous")

# Supersampling factor: shapes are drawn at this multiple of the output size and
# downscaled, which gives anti-aliased edges at a small cost.
_SS = 2

# Streams of the per-item random generators, so seed and drop are independent draws.
_STREAM_DROP_PLAN = 1
_STREAM_SEED_ITEMS = 2
_STREAM_DROP_ITEMS = 3
_STREAM_BAD_ITEMS = 4

# Kinds of undecodable files planted in the drop, in the order they are used.
_BAD_KINDS: tuple[str, ...] = ("zero_byte", "truncated_png", "text_as_png", "truncated_jpeg")

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ImageDemoSpec:
    """Makes the whole image demo a pure function of one value, so reruns are reproducible."""

    n_seed_per_class: int = 120
    n_drop: int = 1500
    image_size: int = 64  # written PNG size (square)
    hard_fraction: float = 0.15  # share of hard/ambiguous items, in seed and drop
    seed: int = 0
    classes: tuple[str, ...] = DEFAULT_CLASSES
    n_bad_items: int = 2  # undecodable files planted in the drop
    mixed_formats: bool = True  # some drop items as JPEG / grayscale / RGBA / other sizes
    # drop class mix (relative weights, one per class); None = mild random imbalance
    class_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        """Fail fast with the offending field's name, before any file is written."""
        if self.class_weights is not None and (
            len(self.class_weights) != len(self.classes)
            or min(self.class_weights) < 0
            or sum(self.class_weights) <= 0
        ):
            raise ValueError(
                f"class_weights must be {len(self.classes)} non-negative weights with a "
                f"positive sum, got {self.class_weights!r}"
            )
        if self.n_seed_per_class <= 0:
            raise ValueError(f"n_seed_per_class must be > 0, got {self.n_seed_per_class}")
        if self.n_drop <= 0:
            raise ValueError(f"n_drop must be > 0, got {self.n_drop}")
        if self.n_bad_items < 0:
            raise ValueError(f"n_bad_items must be >= 0, got {self.n_bad_items}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if not 0.0 <= self.hard_fraction < 1.0:
            raise ValueError(f"hard_fraction must be in [0, 1), got {self.hard_fraction}")
        if len(self.classes) < 2:
            raise ValueError(f"classes needs at least 2 names, got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique, got {self.classes!r}")
        unknown = [c for c in self.classes if c not in _KNOWN_SHAPES]
        if unknown:
            raise ValueError(
                f"classes contains shapes that cannot be drawn: {unknown}; "
                f"choose from {sorted(_KNOWN_SHAPES)}"
            )


@dataclass(frozen=True)
class ImageDemoPaths:
    """Tells callers where :func:`write_image_demo` put things, so none hard-codes the layout."""

    root: Path
    seed_dir: Path  # <root>/seed/<class>/<file>.png  (image-folder layout)
    drop_dir: Path  # <root>/drop/  flat folder of images (+ the bad items)
    truth_path: Path  # <root>/truth/drop_truth.csv — not inside drop_dir


# --------------------------------------------------------------------------- colours


def rand_color(rng: np.random.Generator) -> Color:
    """A uniform RGB colour: every generated image draws its colours from this one place."""
    r, g, b = rng.integers(0, 256, size=3)
    return int(r), int(g), int(b)


def _luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _dist(a: Sequence[float], b: Sequence[float]) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


def contrasting(
    rng: np.random.Generator, against: Sequence[Sequence[float]], min_dist: float, min_luma: float
) -> Color | None:
    """A random colour far enough (RGB and luminance) from every colour in `against`.

    Luminance matters too, so items stay readable once a drop converts them to grayscale.
    """
    for _ in range(60):
        c = rand_color(rng)
        if all(_dist(c, a) >= min_dist and abs(_luma(c) - _luma(a)) >= min_luma for a in against):
            return c
    return None


def _near(rng: np.random.Generator, base: Sequence[float], lo: float, hi: float) -> Color:
    """A colour at RGB distance in [lo, hi] from `base` (for low-contrast hard items)."""
    for _ in range(60):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-9
        c = np.clip(np.asarray(base, dtype=float) + direction * rng.uniform(lo, hi), 0, 255)
        if _dist(c, base) >= lo * 0.8:
            return int(c[0]), int(c[1]), int(c[2])
    return tuple(int(v) for v in base)  # type: ignore[return-value]


# --------------------------------------------------------------------------- rendering


def background(rng: np.random.Generator, side: int) -> tuple[np.ndarray, Color, Color]:
    """Solid or linear-gradient background (HxWx3 float array) and its two end colours."""
    c1 = rand_color(rng)
    c2 = c1 if rng.random() < 0.4 else rand_color(rng)
    if c2 == c1:
        arr = np.empty((side, side, 3), dtype=np.float32)
        arr[:] = c1
        return arr, c1, c2
    angle = float(rng.uniform(0, 2 * math.pi))
    coords = (np.arange(side, dtype=np.float32) + 0.5) / side - 0.5
    t = coords[None, :] * math.cos(angle) + coords[:, None] * math.sin(angle)
    t = (t - t.min()) / (t.max() - t.min() + 1e-9)
    arr = (1 - t)[..., None] * np.asarray(c1, np.float32) + t[..., None] * np.asarray(
        c2, np.float32
    )
    return arr, c1, c2


def clutter(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int, avoid: Color | None
) -> None:
    """Thin lines and small dots/blobs: distractors, far too small to read as a class shape."""
    for _ in range(int(rng.integers(0, 3))):
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, side, size=4))
        draw.line([(x0, y0), (x1, y1)], fill=rand_color(rng), width=_SS)
    for _ in range(int(rng.integers(0, 6))):
        col = rand_color(rng)
        if avoid is not None and _dist(col, avoid) < 60:
            col = (255 - avoid[0], 255 - avoid[1], 255 - avoid[2])
        cx, cy = (float(v) for v in rng.uniform(0, side, size=2))
        rx = side * float(rng.uniform(0.012, 0.04))
        ry = rx * float(rng.uniform(0.6, 1.4))
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=col)


def _render(
    shape: str, rng: np.random.Generator, size: int, hard: bool
) -> tuple[Image.Image, tuple[str, ...]]:
    """Render one item; also return the hard modes applied (empty for easy items)."""
    if shape not in _KNOWN_SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {sorted(_KNOWN_SHAPES)}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    modes: tuple[str, ...] = ()
    if hard:
        modes = (_HARD_MODES[int(rng.integers(len(_HARD_MODES)))],)
        # Two degradations together (e.g. blur on low contrast) erase the shape entirely;
        # only the in-between shape is stacked on top of another mode.
        if modes[0] != "ambiguous" and rng.random() < 0.25:
            modes += ("ambiguous",)

    side = size * _SS
    bg, c1, c2 = background(rng, side)

    # Size and position (in supersampled pixels).
    rel = rng.uniform(0.09, 0.13) if "small" in modes else rng.uniform(0.28, 0.4)
    r = float(rel) * side
    margin = r * 1.05 + _SS
    cx = float(rng.uniform(margin, side - margin))
    cy = float(rng.uniform(margin, side - margin))

    # Colours: clear contrast for easy items; close to the local background when hard.
    if "low_contrast" in modes:
        local = bg[min(int(cy), side - 1), min(int(cx), side - 1)]
        fill = _near(rng, local, 20.0, 36.0)
        outline = None
    else:
        fill = contrasting(rng, [c1, c2], 110.0, 45.0)
        if fill is None:  # the gradient ends leave no room: fall back to a solid background
            bg[:] = c1
            c2 = c1
            fill = contrasting(rng, [c1], 110.0, 45.0) or (
                (0, 0, 0) if _luma(c1) > 127 else (255, 255, 255)
            )
        outline = rand_color(rng) if rng.random() < 0.4 else None

    img = Image.fromarray(bg.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    clutter(draw, rng, side, avoid=fill)

    pts = outline_points(shape, rng, r, ambiguous="ambiguous" in modes)
    poly = [(cx + x, cy + y) for x, y in pts]
    width = int(rng.integers(1, 3)) * _SS if outline is not None else 0
    draw.polygon(poly, fill=fill, outline=outline, width=width)

    if "occluded" in modes:
        # A thick bar across the shape, hiding a large part of it.
        angle = float(rng.uniform(0, math.pi))
        off = float(rng.uniform(-0.3, 0.3)) * r
        bx, by = cx - off * math.sin(angle), cy + off * math.cos(angle)
        dx, dy = math.cos(angle) * side, math.sin(angle) * side
        bar_w = int(r * float(rng.uniform(0.65, 0.95)))
        bar = contrasting(rng, [fill], 80.0, 0.0) or rand_color(rng)
        draw.line([(bx - dx, by - dy), (bx + dx, by + dy)], fill=bar, width=max(bar_w, _SS))

    img = img.resize((size, size), Image.Resampling.BOX)

    if "blur_noise" in modes:
        img = img.filter(ImageFilter.GaussianBlur(size * float(rng.uniform(0.03, 0.05))))
        sigma = float(rng.uniform(18.0, 30.0))
    else:
        if rng.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.7))))
        sigma = float(rng.uniform(2.0, 8.0))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, sigma, size=(size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB"), modes


def render_shape(shape: str, rng: np.random.Generator, size: int, hard: bool) -> Image.Image:
    """Gives benchmarks single items in the demo's image styles without writing a drop.

    RGB image of one item.

    Easy items: a clearly contrasting shape of random size, position, rotation and colour
    on a solid or gradient background with small clutter and mild noise. Hard items get one
    of: a very small shape, low contrast to the background, heavy occlusion by a bar,
    strong blur plus noise, or an in-between shape that sits near another class
    (octagon "circle", heavily rounded square, triangle with cut corners, star with short
    spikes, cross with fat arms, rounded hexagon); a quarter of the degraded ones are also
    drawn as the in-between shape. Degradations are never stacked: together they erase
    the shape and leave pure label noise.
    """
    return _render(shape, rng, size, hard)[0]


# --------------------------------------------------------------------------- writing


def png_bytes(img: Image.Image) -> bytes:
    """The PNG encoding every generated file uses, so equal images give equal bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _encode_drop_item(
    shape: str, rng: np.random.Generator, size: int, hard: bool, mixed: bool
) -> tuple[str, bytes]:
    """File extension and bytes of one drop item, in a realistic mix of formats."""
    kind = "png"
    out_size = size
    if mixed:
        u = float(rng.random())
        if u < 0.12:
            kind = "jpeg"
        elif u < 0.18:
            kind = "gray"
        elif u < 0.22:
            kind = "rgba"
        elif u < 0.30:
            kind = "resized"
            out_size = max(16, round(size * float(rng.choice([0.75, 1.5, 2.0]))))
    img = render_shape(shape, rng, out_size, hard)
    if kind == "jpeg":
        return ".jpg", _jpeg_bytes(img, int(rng.integers(70, 93)))
    if kind == "gray":
        return ".png", png_bytes(img.convert("L"))
    if kind == "rgba":
        return ".png", png_bytes(img.convert("RGBA"))
    return ".png", png_bytes(img)


def _bad_item(kind: str, rng: np.random.Generator, size: int) -> tuple[str, bytes]:
    """File extension and bytes of an undecodable file of the given kind."""
    if kind == "zero_byte":
        return ".png", b""
    if kind == "text_as_png":
        return ".png", b"<html><body>503 Service Unavailable</body></html>\n"
    img = render_shape("circle", rng, size, hard=False)
    if kind == "truncated_png":
        data = png_bytes(img)
        return ".png", data[: max(60, len(data) // 3)]
    data = _jpeg_bytes(img, 85)  # truncated_jpeg
    return ".jpg", data[: max(40, len(data) // 3)]


def exact_hard_flags(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Exactly round(fraction * n) hard items, at random positions."""
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[: round(fraction * n)]] = True
    return flags


def write_image_demo(root: Path | str, spec: ImageDemoSpec = ImageDemoSpec()) -> ImageDemoPaths:
    """Gives the demo and its tests an image drop whose truth is known, without shipping data.

    Layout:

    - ``<root>/seed/<class>/<class>-NNNN.png`` — labeled seed set (image-folder layout),
      RGB PNGs at ``spec.image_size``; ``round(hard_fraction * n_seed_per_class)`` hard
      items per class.
    - ``<root>/drop/item-NNNNNN.png|.jpg`` — ``n_drop + n_bad_items`` files whose names do
      not reveal the class. Classes are mildly imbalanced, as in real drops. With
      ``mixed_formats`` some items are JPEG, grayscale, RGBA or another size. The bad items
      (zero-byte file, truncated PNG, text bytes named ``.png``, truncated JPEG, cycling in
      that order) are numbered among the good ones.
    - ``<root>/truth/drop_truth.csv`` — columns ``item_id,label,hard``; ``item_id`` is the
      file name relative to the drop folder, ``hard`` is 0/1. Bad items are listed too,
      with an empty ``label`` and ``hard`` = 0, so a reader can tell them apart. It lives
      outside the drop folder: the pipeline must never read it.

    Any previous ``seed``, ``drop`` and ``truth`` folders under `root` are removed first, so
    reruns overwrite cleanly. The same spec gives byte-identical files.
    """
    root = Path(root)
    paths = ImageDemoPaths(
        root=root,
        seed_dir=root / "seed",
        drop_dir=root / "drop",
        truth_path=root / "truth" / "drop_truth.csv",
    )
    for d in (paths.seed_dir, paths.drop_dir, paths.truth_path.parent):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    # Seed set: per class, exact hard share; one independent generator per item.
    plan = np.random.default_rng([spec.seed, _STREAM_SEED_ITEMS])
    for k, cls in enumerate(spec.classes):
        class_dir = paths.seed_dir / cls
        class_dir.mkdir()
        hard = exact_hard_flags(plan, spec.n_seed_per_class, spec.hard_fraction)
        for i in range(spec.n_seed_per_class):
            rng = np.random.default_rng([spec.seed, _STREAM_SEED_ITEMS, k, i])
            img = render_shape(cls, rng, spec.image_size, bool(hard[i]))
            (class_dir / f"{cls}-{i:04d}.png").write_bytes(png_bytes(img))

    # Drop plan: which numbers are bad, class of each good item, exact hard share.
    plan = np.random.default_rng([spec.seed, _STREAM_DROP_PLAN])
    total = spec.n_drop + spec.n_bad_items
    bad_positions = set(plan.permutation(total)[: spec.n_bad_items].tolist())
    weights = plan.uniform(0.6, 1.4, size=len(spec.classes))
    if spec.class_weights is not None:  # drawn above anyway: the stream stays the same
        weights = np.asarray(spec.class_weights, dtype=np.float64)
    labels = plan.choice(len(spec.classes), size=spec.n_drop, p=weights / weights.sum())
    hard_flags = exact_hard_flags(plan, spec.n_drop, spec.hard_fraction)

    rows: list[tuple[str, str, int]] = []
    good = bad = 0
    for idx in range(total):
        if idx in bad_positions:
            rng = np.random.default_rng([spec.seed, _STREAM_BAD_ITEMS, bad])
            ext, data = _bad_item(_BAD_KINDS[bad % len(_BAD_KINDS)], rng, spec.image_size)
            label, is_hard = "", 0
            bad += 1
        else:
            rng = np.random.default_rng([spec.seed, _STREAM_DROP_ITEMS, good])
            label = spec.classes[int(labels[good])]
            is_hard = int(hard_flags[good])
            ext, data = _encode_drop_item(
                label, rng, spec.image_size, bool(is_hard), spec.mixed_formats
            )
            good += 1
        name = f"item-{idx:06d}{ext}"
        (paths.drop_dir / name).write_bytes(data)
        rows.append((name, label, is_hard))

    with paths.truth_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["item_id", "label", "hard"])
        writer.writerows(rows)
    return paths
