"""Synthetic multi-label image drop: scenes holding a set of shapes, for `demo --task multilabel`.

Why: multi-label labeling needs a workload where each class is decided on its own. Every
image holds any subset of the class shapes (each present independently, some images with
none, some with three or more), plus shapes of no class as distractors, clutter and noise,
so a small CNN learns it in a CPU-minute or two while a share of hard items (one shape very
small, faint or drawn as its in-between variant) leaves real work for per-class thresholds.

Everything is a pure function of :class:`MultilabelImageSpec`: the same spec writes
byte-identical files.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from raylabel.demo.images import (
    DEFAULT_CLASSES,
    background,
    clutter,
    contrasting,
    exact_hard_flags,
    png_bytes,
)
from raylabel.demo.multilabel_data import (
    check_common,
    class_rates,
    draw_label_sets,
    names_of,
    write_seed_manifest,
    write_truth,
)
from raylabel.demo.shapes import outline_points

#: The multi-label image demo's classes: five of the image demo's six shapes.
MULTILABEL_SHAPES: tuple[str, ...] = DEFAULT_CLASSES[:5]
#: Shapes of no class drawn as distractors; these two resemble no class shape (with a
#: rectangle among them too, square was the weakest class: positive threshold 1.00).
DISTRACTORS: tuple[str, ...] = ("semicircle", "lshape")

_SS = 2  # supersampling factor: drawn at twice the size, downscaled for soft edges
_HARD_MODES: tuple[str, ...] = ("small", "faint", "ambiguous")

# Streams of the random generators, so seed and drop are independent draws.
_STREAM_PLAN = 11
_STREAM_SEED_ITEMS = 12
_STREAM_DROP_ITEMS = 13


@dataclass(frozen=True)
class MultilabelImageSpec:
    """Makes the multi-label image demo a pure function of one value, so reruns agree."""

    n_seed: int = 1200
    n_drop: int = 1500
    image_size: int = 64  # written PNG size (square)
    classes: tuple[str, ...] = MULTILABEL_SHAPES
    prevalence: tuple[float, float] = (0.25, 0.45)  # range of each class's presence rate
    hard_fraction: float = 0.1  # items with one degraded class shape
    distractor_p: float = 0.25  # chance of a shape of no class in an image
    n_bad_items: int = 2  # undecodable files planted in the drop
    seed_format: str = "jsonl"  # "jsonl": label is a list; "csv": label joined by "|"
    seed: int = 0

    def __post_init__(self) -> None:
        """Fail fast with the offending field's name, before any file is written."""
        check_common(self.classes, self.prevalence, self.seed_format, self.hard_fraction)
        unknown = [c for c in self.classes if c not in DEFAULT_CLASSES]
        if unknown:
            raise ValueError(f"classes: cannot draw {unknown}; choose from {DEFAULT_CLASSES}")
        if self.n_seed <= 0 or self.n_drop <= 0:
            raise ValueError(f"n_seed and n_drop must be > 0, got {self.n_seed}, {self.n_drop}")
        if self.n_bad_items < 0:
            raise ValueError(f"n_bad_items must be >= 0, got {self.n_bad_items}")
        if self.image_size < 24:
            raise ValueError(f"image_size must be >= 24, got {self.image_size}")
        if not 0.0 <= self.distractor_p <= 1.0:
            raise ValueError(f"distractor_p must be in [0, 1], got {self.distractor_p}")


@dataclass(frozen=True)
class MultilabelImagePaths:
    """Tells callers where :func:`write_multilabel_image_demo` put things."""

    root: Path
    seed_path: Path  # <root>/seed/seed.jsonl|csv — item_id, uri (relative), label (a set)
    drop_dir: Path  # <root>/drop/item-NNNNNN.png (+ the bad items)
    truth_path: Path  # <root>/truth/drop_truth.parquet — not inside drop_dir


def _place(
    rng: np.random.Generator, radii: list[float], side: float
) -> tuple[list[tuple[float, float]], list[float]]:
    """Centres with no two shapes overlapping, and the radii, shrunk until all shapes fit."""
    while True:
        centres: list[tuple[float, float]] = []
        for r in radii:
            for _ in range(60):
                x, y = (float(v) for v in rng.uniform(r + _SS, side - r - _SS, size=2))
                if all(
                    math.hypot(x - cx, y - cy) >= (r + rr) * 1.05
                    for (cx, cy), rr in zip(centres, radii, strict=False)
                ):
                    centres.append((x, y))
                    break
            else:
                break
        if len(centres) == len(radii):
            return centres, radii
        radii = [r * 0.9 for r in radii]


def render_scene(
    present: list[str], rng: np.random.Generator, size: int, hard: bool, distractor_p: float
) -> Image.Image:
    """One RGB image holding every shape in `present` (any number, possibly none).

    Shapes get their own size, rotation, position and a colour that contrasts with the
    background; a distractor of no class joins with probability `distractor_p`. A `hard`
    item draws one of its class shapes small, faint (close to the background) or as its
    in-between variant. Clutter, mild blur and noise as in the single-shape demo.
    """
    side = size * _SS
    bg, c1, c2 = background(rng, side)
    shapes = list(present)
    if rng.random() < distractor_p:
        shapes.append(DISTRACTORS[int(rng.integers(len(DISTRACTORS)))])
    order = rng.permutation(len(shapes)).tolist()
    shapes = [shapes[i] for i in order]
    degraded = -1
    mode = ""
    if hard and present:
        degraded = shapes.index(present[int(rng.integers(len(present)))])
        mode = _HARD_MODES[int(rng.integers(len(_HARD_MODES)))]
    radii = [
        side * float(rng.uniform(0.08, 0.1) if i == degraded and mode == "small"
                     else rng.uniform(0.16, 0.23))
        for i in range(len(shapes))
    ]  # fmt: skip
    centres, radii = _place(rng, radii, side)
    img = Image.fromarray(bg.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    clutter(draw, rng, side, avoid=None)
    for i, (shape, r, (cx, cy)) in enumerate(zip(shapes, radii, centres, strict=True)):
        if i == degraded and mode == "faint":
            local = np.asarray(bg[min(int(cy), side - 1), min(int(cx), side - 1)], float)
            fill = contrasting(rng, [local], 30.0, 0.0) or (0, 0, 0)
            fill = tuple(int(v) for v in local + (np.asarray(fill) - local) * 0.35)
        else:
            fill = contrasting(rng, [c1, c2], 110.0, 45.0) or (
                (0, 0, 0) if sum(c1) > 382 else (255, 255, 255)
            )
        pts = outline_points(shape, rng, r, ambiguous=i == degraded and mode == "ambiguous")
        draw.polygon([(cx + x, cy + y) for x, y in pts], fill=fill)
    img = img.resize((size, size), Image.Resampling.BOX)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.6))))
    noise = rng.normal(0.0, float(rng.uniform(2.0, 8.0)), size=(size, size, 3))
    arr = np.asarray(img, dtype=np.float32) + noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _fresh(root: Path, spec: MultilabelImageSpec) -> MultilabelImagePaths:
    paths = MultilabelImagePaths(
        root=root,
        seed_path=root / "seed" / f"seed.{spec.seed_format}",
        drop_dir=root / "drop",
        truth_path=root / "truth" / "drop_truth.parquet",
    )
    for d in (paths.seed_path.parent, paths.drop_dir, paths.truth_path.parent):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    (paths.seed_path.parent / "images").mkdir()
    return paths


def _bad_bytes(k: int, rng: np.random.Generator, size: int) -> bytes:
    """A zero-byte file, then truncated PNGs: undecodable items for the error table."""
    if k % 2 == 0:
        return b""
    data = png_bytes(render_scene(["circle"], rng, size, False, 0.0))
    return data[: max(60, len(data) // 3)]


def write_multilabel_image_demo(
    root: Path | str, spec: MultilabelImageSpec = MultilabelImageSpec()
) -> MultilabelImagePaths:
    """Gives `demo --task multilabel` and its tests scenes whose true label sets are known.

    Layout:

    - ``<root>/seed/images/seed-NNNNNN.png`` and ``<root>/seed/seed.jsonl`` (or ``.csv``):
      rows ``item_id, uri, label`` with `uri` relative to the manifest and `label` the
      item's classes, a JSON list (CSV: joined by ``|``, empty for none).
    - ``<root>/drop/item-NNNNNN.png`` — ``n_drop + n_bad_items`` files; the item_id of a
      file is its name (its path relative to the drop folder), as the folder reader says.
    - ``<root>/truth/drop_truth.parquet`` — ``item_id, labels, hard`` for every drop file;
      `labels` is null for the planted undecodable files. The pipeline never reads it.

    Previous seed, drop and truth folders under `root` are removed first.
    """
    paths = _fresh(Path(root), spec)
    plan = np.random.default_rng([spec.seed, _STREAM_PLAN])
    rates = class_rates(plan, len(spec.classes), spec.prevalence)
    seed_sets = draw_label_sets(plan, spec.n_seed, rates)
    seed_hard = exact_hard_flags(plan, spec.n_seed, spec.hard_fraction)
    rows = []
    for i in range(spec.n_seed):
        rng = np.random.default_rng([spec.seed, _STREAM_SEED_ITEMS, i])
        present = names_of(seed_sets[i], spec.classes)
        img = render_scene(present, rng, spec.image_size, bool(seed_hard[i]), spec.distractor_p)
        rel = f"images/seed-{i:06d}.png"
        (paths.seed_path.parent / rel).write_bytes(png_bytes(img))
        rows.append({"item_id": f"seed-{i:06d}", "uri": rel, "label": present})
    write_seed_manifest(paths.seed_path, rows, spec.seed_format)

    total = spec.n_drop + spec.n_bad_items
    bad = set(plan.permutation(total)[: spec.n_bad_items].tolist())
    drop_sets = draw_label_sets(plan, spec.n_drop, rates)
    drop_hard = exact_hard_flags(plan, spec.n_drop, spec.hard_fraction)
    truth: list[tuple[str, list[str] | None, bool]] = []
    good = 0
    for idx in range(total):
        name = f"item-{idx:06d}.png"
        rng = np.random.default_rng([spec.seed, _STREAM_DROP_ITEMS, idx])
        if idx in bad:
            data, labels, hard = _bad_bytes(len(truth) - good, rng, spec.image_size), None, False
        else:
            labels = names_of(drop_sets[good], spec.classes)
            hard = bool(drop_hard[good]) and bool(labels)
            img = render_scene(labels, rng, spec.image_size, hard, spec.distractor_p)
            data = png_bytes(img)
            good += 1
        (paths.drop_dir / name).write_bytes(data)
        truth.append((name, labels, hard))
    write_truth(paths.truth_path, truth)
    return paths
