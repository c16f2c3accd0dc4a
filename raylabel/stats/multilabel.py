"""Multi-label calibration, thresholds and decisions (numpy/scipy only).

A multi-label model scores every class on its own (one sigmoid per class), so each class
is a binary question decided alone: *is c among the item's labels?* Trust works as in the
multiclass rule (`raylabel.stats.thresholds`), once per side of each class:

- positive: c is decided present where the calibrated score ``p >= t``, t the lowest cut
  whose one-sided lower bound of precision (share of calibration items with c present)
  reaches the target;
- negative: c is decided absent where ``p <= u``, u the highest cut whose lower bound of
  the negative predictive value (share with c absent) reaches the target;
- between the two the class is undecided, and an item is accepted only when no class is.

A side that no cut can carry gets a sentinel (1.01: never positive, -0.01: never
negative), so the class stays undecided rather than guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from raylabel.stats.thresholds import (
    BOUNDS,
    NEVER_ACCEPT,
    lowest_cut,
    precision_lower_bound,
)

#: Negative threshold of a class that can never be decided absent (scores are never < 0).
NEVER_NEGATIVE = -0.01
#: Where the temperature search stays: sharpening 20x to softening 20x.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def sigmoid(logits: np.ndarray, temperatures: np.ndarray | None = None) -> np.ndarray:
    """Per-class probabilities sigmoid(logit / T_c) in float64 (``expit`` cannot overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    if temperatures is not None:
        t = np.asarray(temperatures, dtype=np.float64)
        if t.ndim != 1 or z.ndim < 1 or t.shape[0] != z.shape[-1]:
            raise ValueError(
                f"temperatures must hold one value per class ({z.shape[-1:]}), got shape {t.shape}"
            )
        if np.any(~np.isfinite(t)) or np.any(t <= 0):
            raise ValueError("temperatures must be finite and > 0")
        z = z / t
    return special.expit(z)


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Item weights as float64 (ones when absent), refusing what no fit could use."""
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have one value per item ({n}), got shape {w.shape}")
    if n and (np.any(~np.isfinite(w)) or np.any(w <= 0)):
        raise ValueError("weights must be finite and > 0")
    return w


def _check_targets(targets: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """0/1 targets of the same shape as the scores, as bool."""
    y = np.asarray(targets)
    if y.shape != shape:
        raise ValueError(f"targets must have the shape of {name} {shape}, got {y.shape}")
    if y.size and not np.all((y == 0) | (y == 1)):
        raise ValueError("targets must hold only 0/1 (or bool) values")
    return y.astype(bool)


def _bce(z: np.ndarray, y: np.ndarray, w: np.ndarray, temperature: float) -> float:
    """Weighted mean binary cross-entropy of sigmoid(z / T), via softplus (no log(0))."""
    s = z / temperature
    loss = np.where(y, np.logaddexp(0.0, -s), np.logaddexp(0.0, s))
    return float(np.sum(w * loss) / np.sum(w))


def fit_class_temperatures(
    logits: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """One temperature per class minimising the weighted BCE of sigmoid(logit / T).

    Each class is fitted alone (bounded Brent on log T, as ``fit_temperature`` does): a
    multi-label model is often over-confident on frequent tags and timid on rare ones, so a
    shared temperature would fix neither. A class whose calibration items are all positive
    or all negative carries no information about its scale and keeps T = 1.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must be 2-D (items x classes), got shape {x.shape}")
    y = _check_targets(targets, x.shape, "logits")
    w = _check_weights(weights, x.shape[0])
    if not np.all(np.isfinite(x)):
        raise ValueError("logits must be finite")
    lo, hi = TEMPERATURE_BOUNDS
    out = np.ones(x.shape[1], dtype=np.float64)
    for c in range(x.shape[1]):
        yc = y[:, c]
        if yc.all() or not yc.any():
            continue
        res = optimize.minimize_scalar(
            lambda log_t, c=c, yc=yc: _bce(x[:, c], yc, w, math.exp(log_t)),
            bounds=(math.log(lo), math.log(hi)),
            method="bounded",
            options={"xatol": 1e-5},
        )
        out[c] = math.exp(res.x)
    return out


def multilabel_ece(probs: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the per-class probabilities pooled over all (item, class) pairs.

    Equal-width bins on the probability itself (not a top-label confidence): in a
    multi-label run every score is a decision, the 0.03 ones as much as the 0.97 ones.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (items x classes), got shape {p.shape}")
    y = _check_targets(targets, p.shape, "probs")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if p.size == 0:
        return 0.0
    flat, hit = p.ravel(), y.ravel().astype(np.float64)
    idx = np.clip(np.floor(flat * n_bins).astype(np.int64), 0, n_bins - 1)
    conf_sum = np.bincount(idx, weights=flat, minlength=n_bins)
    hit_sum = np.bincount(idx, weights=hit, minlength=n_bins)
    return float(np.sum(np.abs(hit_sum - conf_sum)) / flat.size)


@dataclass
class MultiLabelThresholds:
    """Per-class positive and negative thresholds and the evidence behind each side.

    Sources are ``"class"`` (the class's own calibration items carry the side) or
    ``"unreachable"`` (sentinel threshold; the bound is then the best any cut reached).
    """

    classes: list[str]
    positive: dict[str, float]
    negative: dict[str, float]
    positive_source: dict[str, str]
    negative_source: dict[str, str]
    positive_bound: dict[str, float]
    negative_bound: dict[str, float]
    support: dict[str, dict[str, int]]
    target_precision: float
    confidence_level: float = 0.95
    method: str = "clopper_pearson"

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for the model card / summary.json."""
        return {
            "classes": list(self.classes),
            "positive": dict(self.positive),
            "negative": dict(self.negative),
            "positive_source": dict(self.positive_source),
            "negative_source": dict(self.negative_source),
            "positive_bound": dict(self.positive_bound),
            "negative_bound": dict(self.negative_bound),
            "support": {k: dict(v) for k, v in self.support.items()},
            "target_precision": self.target_precision,
            "confidence_level": self.confidence_level,
            "method": self.method,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MultiLabelThresholds:
        """Inverse of :meth:`to_json` (read back at labeling time)."""
        floats = {
            key: {k: float(v) for k, v in d[key].items()}
            for key in ("positive", "negative", "positive_bound", "negative_bound")
        }
        return cls(
            classes=[str(c) for c in d["classes"]],
            positive_source=dict(d["positive_source"]),
            negative_source=dict(d["negative_source"]),
            support={k: {s: int(n) for s, n in v.items()} for k, v in d["support"].items()},
            target_precision=float(d["target_precision"]),
            confidence_level=float(d.get("confidence_level", 0.95)),
            method=str(d.get("method", "clopper_pearson")),
            **floats,
        )

    def explanation_lines(self) -> list[str]:
        """One line per class with an unreachable side: what it has, and what it means."""
        out = []
        for name in self.classes:
            sides = [
                side
                for side, src in (
                    ("positive", self.positive_source[name]),
                    ("negative", self.negative_source[name]),
                )
                if src == "unreachable"
            ]
            if sides:
                out.append(self._line(name, sides))
        return out

    def _line(self, name: str, sides: list[str]) -> str:
        sup = self.support.get(name, {})
        head = (
            f"{name}: {sup.get('positives', 0)} positive and {sup.get('negatives', 0)} "
            "negative calibration items"
        )
        parts = []
        for side in sides:
            bound = (self.positive_bound if side == "positive" else self.negative_bound)[name]
            what = "precision" if side == "positive" else "negative predictive value"
            never = "never decided present" if side == "positive" else "never decided absent"
            parts.append(
                f"{side} side unreachable (best lower bound of {what} {bound:.3f} < target "
                f"{self.target_precision:g} at {self.confidence_level:g}): {never}"
            )
        return f"{head}; " + "; ".join(parts)


def _bounds_by_cut(
    conf: np.ndarray, correct: np.ndarray, w: np.ndarray, level: float, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """(cut, lower bound of the share correct at or above it) for every realisable cut.

    Counts are Kish-effective, as in ``lowest_cut``, so the bound reported matches the
    one the cut was chosen by; a cut inside a run of tied scores is not realisable.
    """
    if conf.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    c, y, ww = conf[order], correct[order].astype(np.float64), w[order]
    big_w, big_k, w2 = np.cumsum(ww), np.cumsum(ww * y), np.cumsum(ww * ww)
    n_eff = big_w * big_w / w2
    k_eff = big_k / big_w * n_eff
    idx = np.flatnonzero(np.append(c[1:] < c[:-1], True))
    lb = np.asarray(precision_lower_bound(k_eff[idx], n_eff[idx], level, method))
    return c[idx], lb


@dataclass(frozen=True)
class _Side:
    """One side of one class: the cut (None: unreachable) and the bound behind it."""

    cut: float | None
    bound: float


def _side(
    conf: np.ndarray, correct: np.ndarray, w: np.ndarray, target: float, level: float, method: str
) -> _Side:
    """The lowest cut of ``conf`` whose bound reaches the target, with its bound (or the
    best bound any cut reaches when none does)."""
    cut = lowest_cut(conf, correct, w, target, level, method)
    cuts, lb = _bounds_by_cut(conf, correct, w, level, method)
    if cut is None:
        return _Side(None, float(lb.max()) if lb.size else 0.0)
    return _Side(float(cut), float(lb[np.flatnonzero(cuts == cut)[0]]))


def _negative_side(
    p: np.ndarray, absent: np.ndarray, w: np.ndarray, target: float, level: float, method: str
) -> tuple[float, _Side]:
    """The highest u with the NPV bound of {p <= u} at the target, mapped back to a score.

    The cut is searched on 1 - p and mapped back to the largest calibration score at or
    below it (not to 1 - cut), so ``p <= u`` selects exactly the items the bound counted.
    """
    q = 1.0 - p
    side = _side(q, absent, w, target, level, method)
    if side.cut is None:
        return NEVER_NEGATIVE, side
    return float(p[q >= side.cut].max()), side


def _validate(
    p: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    target_precision: float,
    confidence_level: float,
    method: str,
) -> np.ndarray:
    """The checks of ``choose_multilabel_thresholds``; returns the targets as bool."""
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (items x classes), got shape {p.shape}")
    if p.shape[1] != len(classes):
        raise ValueError(f"probs has {p.shape[1]} columns but {len(classes)} classes were given")
    if len(set(classes)) != len(classes):
        raise ValueError("classes must be distinct")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("probs must be finite probabilities in [0, 1]")
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    if method not in BOUNDS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(BOUNDS)}")
    return _check_targets(targets, p.shape, "probs")


def choose_multilabel_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    target_precision: float,
    confidence_level: float = 0.95,
    method: str = "clopper_pearson",
    weights: np.ndarray | None = None,
) -> MultiLabelThresholds:
    """Positive and negative thresholds per class from calibrated calibration scores.

    The positive side wins any overlap (``decide`` checks it first), so where the negative
    cut reaches the positive one the negative side is searched again among the items
    scored below t only: the cut found there still carries the target on its own items,
    which merely lowering u to the next score would not guarantee.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = _validate(p, targets, classes, target_precision, confidence_level, method)
    w = _check_weights(weights, p.shape[0])
    target, level = float(target_precision), float(confidence_level)
    res = MultiLabelThresholds(
        classes=[str(c) for c in classes],
        positive={},
        negative={},
        positive_source={},
        negative_source={},
        positive_bound={},
        negative_bound={},
        support={},
        target_precision=target,
        confidence_level=level,
        method=method,
    )
    for ci, name in enumerate(res.classes):
        pc, yc = p[:, ci], y[:, ci]
        pos = _side(pc, yc, w, target, level, method)
        t = NEVER_ACCEPT if pos.cut is None else pos.cut
        u, neg = _negative_side(pc, ~yc, w, target, level, method)
        if u >= t:
            below = pc < t
            u, neg = _negative_side(pc[below], ~yc[below], w[below], target, level, method)
        res.positive[name], res.negative[name] = t, u
        res.positive_source[name] = "unreachable" if pos.cut is None else "class"
        res.negative_source[name] = "unreachable" if neg.cut is None else "class"
        res.positive_bound[name], res.negative_bound[name] = pos.bound, neg.bound
        res.support[name] = {"positives": int(yc.sum()), "negatives": int((~yc).sum())}
    return res


def _check_decision_inputs(
    probs: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores [N, C] and the two threshold rows [C], as float64."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (items x classes), got shape {p.shape}")
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    for name, arr in (("positive", pos), ("negative", neg)):
        if arr.shape != (p.shape[1],):
            raise ValueError(
                f"{name} thresholds must have one value per class ({p.shape[1]}), "
                f"got shape {arr.shape}"
            )
    return p, pos, neg


def decide(
    probs: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positive mask, undecided mask), both bool [N, C], by the card's rule.

    Positive where ``p >= positive``; negative where ``p <= negative`` and not positive;
    undecided otherwise. An item is accepted iff its undecided row is all False.
    """
    p, pos, neg = _check_decision_inputs(probs, positive, negative)
    is_pos = p >= pos
    is_neg = (p <= neg) & ~is_pos
    return is_pos, ~(is_pos | is_neg)


def decision_margin(probs: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Per item, the smallest distance over classes from a score to its nearest threshold.

    Only thresholds inside [0, 1] count (the sentinels are no boundary a score can cross);
    a class with neither inside can never be decided and contributes 0. Small = the item
    sits near a boundary, which is what the review sample wants to see.
    """
    p, pos, neg = _check_decision_inputs(probs, positive, negative)
    inside_pos = (pos >= 0.0) & (pos <= 1.0)
    inside_neg = (neg >= 0.0) & (neg <= 1.0)
    d_pos = np.where(inside_pos, np.abs(p - pos), np.inf)
    d_neg = np.where(inside_neg, np.abs(p - neg), np.inf)
    d = np.minimum(d_pos, d_neg)
    d = np.where(inside_pos | inside_neg, d, 0.0)
    return np.min(d, axis=1, initial=1.0).astype(np.float32)


def thresholds_arrays(card_like: Any) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) thresholds as float64 arrays in the class order.

    Takes a :class:`MultiLabelThresholds` or anything shaped like the model card
    (``classes``, ``thresholds``, ``negative_thresholds``), so the labeling actor needs
    no conversion of its own.
    """
    if isinstance(card_like, MultiLabelThresholds):
        pos_map, neg_map = card_like.positive, card_like.negative
    else:
        pos_map = getattr(card_like, "thresholds", None)
        neg_map = getattr(card_like, "negative_thresholds", None)
        if pos_map is None or neg_map is None:
            raise ValueError(
                f"{type(card_like).__name__} has no positive/negative thresholds "
                "(need MultiLabelThresholds or a card with thresholds and negative_thresholds)"
            )
    classes = list(card_like.classes)
    for name in classes:
        for side, mapping in (("positive", pos_map), ("negative", neg_map)):
            if name not in mapping:
                raise ValueError(f"class {name!r} has no {side} threshold")
    pos = np.array([float(pos_map[c]) for c in classes], dtype=np.float64)
    neg = np.array([float(neg_map[c]) for c in classes], dtype=np.float64)
    return pos, neg
