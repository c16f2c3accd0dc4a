"""Shape outlines for the generated image data: polygons centred on (0, 0).

Why a module of its own: the demo draws six shapes, the small-seed benchmark ten, and the
pretraining stand-in for ImageNet another eight that none of the ten resembles closely
(backbones learn shape, colour and clutter invariance there and are fine-tuned on the
ten). Every shape has an in-between ("ambiguous") variant that sits near another class.
"""

from __future__ import annotations

import math

import numpy as np

Point = tuple[float, float]

#: The four shapes beyond the demo's six (the small-seed benchmark draws all ten).
EXTRA_SHAPES: tuple[str, ...] = ("pentagon", "diamond", "arrow", "semicircle")
#: Shapes only the pretraining stand-in uses, disjoint from the ten labelled ones.
PRETRAIN_SHAPES: tuple[str, ...] = (
    "rectangle",
    "trapezoid",
    "parallelogram",
    "heptagon",
    "chevron",
    "lshape",
    "tshape",
    "kite",
)


def _regular(n: int, radius: float, rot: float, start: float = -math.pi / 2) -> list[Point]:
    return [
        (radius * math.cos(start + rot + 2 * math.pi * i / n),
         radius * math.sin(start + rot + 2 * math.pi * i / n))
        for i in range(n)
    ]  # fmt: skip


def _rounded(poly: list[Point], corner: float, steps: int = 6) -> list[Point]:
    """Minkowski sum of a convex CCW-or-CW polygon with a disk: rounded corners."""
    n = len(poly)
    # Orientation sign so normals point outward for either winding.
    area2 = sum(
        poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n)
    )
    sign = 1.0 if area2 > 0 else -1.0
    normals = []
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        ex, ey = x1 - x0, y1 - y0
        length = math.hypot(ex, ey) or 1.0
        normals.append(math.atan2(-ex * sign / length, ey * sign / length))
    out: list[Point] = []
    for i in range(n):
        a0, a1 = normals[i - 1], normals[i]
        while a1 < a0:
            a1 += 2 * math.pi
        for s in range(steps + 1):
            a = a0 + (a1 - a0) * s / steps
            out.append((poly[i][0] + corner * math.cos(a), poly[i][1] + corner * math.sin(a)))
    return out


def _truncated(poly: list[Point], frac: float) -> list[Point]:
    """Cut each corner of a polygon at `frac` of the adjacent edges (triangle -> hexagon-ish)."""
    n = len(poly)
    out: list[Point] = []
    for i in range(n):
        p, prev, nxt = poly[i], poly[i - 1], poly[(i + 1) % n]
        out.append((p[0] + (prev[0] - p[0]) * frac, p[1] + (prev[1] - p[1]) * frac))
        out.append((p[0] + (nxt[0] - p[0]) * frac, p[1] + (nxt[1] - p[1]) * frac))
    return out


def _rotate(points: list[Point], angle: float) -> list[Point]:
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def outline_points(shape: str, rng: np.random.Generator, r: float, ambiguous: bool) -> list[Point]:
    """One geometry for every drawn class, so the demo, benchmarks and pretraining agree.

    Polygon (centred on 0, 0, circumradius about `r`) of one shape.

    With `ambiguous`, draw the in-between variant that sits near another class.
    """
    rot = float(rng.uniform(0, 2 * math.pi))
    if shape == "circle":
        if ambiguous:  # octagon: a low-poly circle, close to a hexagon
            return _regular(8, r, rot)
        aspect = float(rng.uniform(0.95, 1.05))
        pts = _regular(72, r, 0.0)
        return _rotate([(x * aspect, y / aspect) for x, y in pts], rot)
    if shape == "square":
        half = r / math.sqrt(2)
        aspect = float(rng.uniform(0.88, 1.12))
        pts = [(-half * aspect, -half / aspect), (half * aspect, -half / aspect),
               (half * aspect, half / aspect), (-half * aspect, half / aspect)]  # fmt: skip
        if ambiguous:  # heavily rounded square, close to a circle
            k = float(rng.uniform(0.55, 0.8))
            pts = _rounded([(x * (1 - k), y * (1 - k)) for x, y in pts], half * k)
        return _rotate(pts, rot)
    if shape == "triangle":
        pts = []
        for i in range(3):
            a = -math.pi / 2 + 2 * math.pi * i / 3 + float(rng.uniform(-0.12, 0.12))
            rad = r * float(rng.uniform(0.92, 1.05))
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        if ambiguous:  # corners cut off: between a triangle and a hexagon
            pts = _truncated(pts, float(rng.uniform(0.2, 0.28)))
        return _rotate(pts, rot)
    if shape == "star":
        points = 5
        inner = float(rng.uniform(0.7, 0.8) if ambiguous else rng.uniform(0.35, 0.47))
        pts = []
        for i in range(2 * points):
            rad = r if i % 2 == 0 else r * inner
            a = -math.pi / 2 + math.pi * i / points
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return _rotate(pts, rot)
    if shape == "cross":
        arm = r * 0.95
        # Fat arms make the plus sign read as a square / octagon.
        w = arm * float(rng.uniform(0.5, 0.62) if ambiguous else rng.uniform(0.22, 0.34))
        pts = [(-w, -arm), (w, -arm), (w, -w), (arm, -w), (arm, w), (w, w),
               (w, arm), (-w, arm), (-w, w), (-arm, w), (-arm, -w), (-w, -w)]  # fmt: skip
        return _rotate(pts, rot)
    if shape == "hexagon":
        pts = [
            (x * float(rng.uniform(0.97, 1.03)), y * float(rng.uniform(0.97, 1.03)))
            for x, y in _regular(6, r, 0.0)
        ]
        if ambiguous:  # rounded hexagon, close to a circle
            k = float(rng.uniform(0.4, 0.6))
            pts = _rounded([(x * (1 - k), y * (1 - k)) for x, y in pts], r * k)
        return _rotate(pts, rot)
    return _more_outline_points(shape, rng, r, ambiguous, rot)


def _more_outline_points(
    shape: str, rng: np.random.Generator, r: float, ambiguous: bool, rot: float
) -> list[Point]:
    """The four shapes beyond the demo's six, each with an in-between variant."""
    if shape == "pentagon":
        pts = _regular(5, r, 0.0)
        if ambiguous:  # rounded pentagon, close to a circle or a hexagon
            k = float(rng.uniform(0.35, 0.55))
            pts = _rounded([(x * (1 - k), y * (1 - k)) for x, y in pts], r * k)
        return _rotate(pts, rot)
    if shape == "diamond":
        # an elongated rhombus; the in-between one is nearly square
        aspect = float(rng.uniform(0.75, 0.85) if ambiguous else rng.uniform(0.45, 0.6))
        return _rotate([(0.0, -r), (r * aspect, 0.0), (0.0, r), (-r * aspect, 0.0)], rot)
    if shape == "arrow":
        w = r * float(rng.uniform(0.22, 0.3))
        head = r * float(rng.uniform(0.15, 0.25) if ambiguous else rng.uniform(0.5, 0.65))
        spread = r * float(rng.uniform(0.3, 0.36) if ambiguous else rng.uniform(0.5, 0.7))
        neck = r - 2 * head
        pts = [(-r, -w), (neck, -w), (neck, -spread), (r, 0.0), (neck, spread), (neck, w),
               (-r, w)]  # fmt: skip
        return _rotate(pts, rot)
    if shape == "semicircle":
        # a half disk; the in-between one is most of a disk, close to a circle
        span = math.pi * float(rng.uniform(1.45, 1.6) if ambiguous else 1.0)
        start = -span / 2
        pts = [(0.0, 0.0)] if span <= math.pi + 1e-9 else []
        pts += [
            (r * math.cos(start + span * i / 36), r * math.sin(start + span * i / 36))
            for i in range(37)
        ]
        return _rotate(pts, rot)
    return _rotate(_pretrain_points(shape, rng, r, ambiguous), rot)


def _pretrain_points(
    shape: str, rng: np.random.Generator, r: float, ambiguous: bool
) -> list[Point]:
    """The pretraining-only shapes (unrotated)."""

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    if shape == "rectangle":
        a = u(0.55, 0.7) if ambiguous else u(0.3, 0.45)
        return [(-r, -r * a), (r, -r * a), (r, r * a), (-r, r * a)]
    if shape == "trapezoid":
        top = u(0.6, 0.8) if ambiguous else u(0.25, 0.45)
        return [(-r * top, -r * 0.6), (r * top, -r * 0.6), (r, r * 0.6), (-r, r * 0.6)]
    if shape == "parallelogram":
        skew = u(0.1, 0.2) if ambiguous else u(0.35, 0.5)
        h = r * 0.55
        return [(-r + skew * r, -h), (r, -h), (r - skew * r, h), (-r, h)]
    if shape == "heptagon":
        pts = _regular(7, r, 0.0)
        return _rounded([(x * 0.6, y * 0.6) for x, y in pts], r * 0.4) if ambiguous else pts
    if shape == "chevron":
        t = r * (u(0.5, 0.6) if ambiguous else u(0.28, 0.38))
        return [(-r, -r), (0.0, -r + t + r * 0.6), (r, -r), (r, -r + t), (0.0, r * 0.6 + t),
                (-r, -r + t)]  # fmt: skip
    if shape == "lshape":
        t = r * (u(0.7, 0.85) if ambiguous else u(0.35, 0.5))
        return [(-r, -r), (-r + t, -r), (-r + t, r - t), (r, r - t), (r, r), (-r, r)]
    if shape == "tshape":
        t = r * (u(0.6, 0.75) if ambiguous else u(0.3, 0.42))
        return [(-r, -r), (r, -r), (r, -r + t), (t / 2, -r + t), (t / 2, r), (-t / 2, r),
                (-t / 2, -r + t), (-r, -r + t)]  # fmt: skip
    if shape == "kite":
        low = u(0.75, 0.9) if ambiguous else u(0.3, 0.45)
        w = r * u(0.55, 0.7)
        return [(0.0, -r), (w, -r * low), (0.0, r), (-w, -r * low)]
    raise ValueError(f"unknown shape {shape!r}")
