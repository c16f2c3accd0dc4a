"""Confidence calibration and per-class acceptance thresholds (pure numpy/scipy, no Ray).

Temperature scaling makes the model's confidence mean what it says; the threshold rule
then accepts a label only where a *one-sided lower confidence bound* of precision on the
held-out validation split reaches the target, so acceptance is backed by evidence and not
by a lucky point estimate on a handful of items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

#: Threshold given to a class that can never be accepted (confidences never exceed 1.0).
NEVER_ACCEPT = 1.01


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / T``, shifted by the row max so it cannot overflow."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    z = logits / temperature
    lse = special.logsumexp(z, axis=1)
    return float(np.mean(lse - z[np.arange(len(labels)), labels]))


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """Temperature T minimising validation NLL of softmax(logits / T).

    The search runs on log T (bounded Brent), which is well conditioned for both sharpening
    (T < 1) and softening (T > 1). Returns 1.0 (identity) when there is nothing to fit on.
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] == 0:
        return 1.0
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"logits has {x.shape[0]} rows but labels has {y.shape[0]}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    res = optimize.minimize_scalar(
        lambda log_t: _nll(x, y, math.exp(log_t)),
        bounds=(math.log(lo), math.log(hi)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(math.exp(res.x))


def _top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of the argmax prediction, the quantities thresholds act on."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (items x classes), got shape {p.shape}")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"probs has {p.shape[0]} rows but labels has {y.shape[0]}")
    pred = np.argmax(p, axis=1)
    conf = p[np.arange(p.shape[0]), pred]
    return conf, pred == y


def _bin_stats(
    conf: np.ndarray, correct: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: count, summed confidence, summed correctness."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    idx = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins)
    return count, conf_sum, acc_sum


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins: the count-weighted |accuracy - confidence| gap."""
    conf, correct = _top_label(probs, labels)
    if conf.size == 0:
        return 0.0
    _, conf_sum, acc_sum = _bin_stats(conf, correct, n_bins)
    return float(np.sum(np.abs(acc_sum - conf_sum)) / conf.size)


def reliability_curve(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> dict[str, list[float]]:
    """Reliability diagram data (JSON-ready); empty bins are omitted so no NaN reaches JSON."""
    conf, correct = _top_label(probs, labels)
    count, conf_sum, acc_sum = _bin_stats(conf, correct, n_bins)
    keep = count > 0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    safe = np.where(keep, count, 1.0)
    return {
        "bin_lower": edges[:-1][keep].tolist(),
        "bin_upper": edges[1:][keep].tolist(),
        "confidence": (conf_sum / safe)[keep].tolist(),
        "accuracy": (acc_sum / safe)[keep].tolist(),
        "count": count[keep].tolist(),
    }


def precision_lower_bound(
    k: np.ndarray | int,
    n: np.ndarray | int,
    confidence_level: float,
    method: str = "clopper_pearson",
) -> np.ndarray | float:
    """One-sided lower confidence bound for a binomial proportion k/n (0.0 where n == 0).

    ``clopper_pearson`` is exact (never under-covers), ``wilson`` is the score bound (tighter,
    close to nominal). Vectorised over array inputs; scalars in give a float out.
    """
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    scalar = np.ndim(k) == 0 and np.ndim(n) == 0
    kk, nn = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    if np.any(kk < 0) or np.any(kk > nn):
        raise ValueError("need 0 <= k <= n")
    out = np.zeros(kk.shape, dtype=np.float64)
    alpha = 1.0 - confidence_level
    if method == "clopper_pearson":
        ok = (nn > 0) & (kk > 0)
        out[ok] = stats.beta.ppf(alpha, kk[ok], nn[ok] - kk[ok] + 1.0)
    elif method == "wilson":
        ok = nn > 0
        z = stats.norm.ppf(confidence_level)
        n_ok, p = nn[ok], kk[ok] / nn[ok]
        centre = p + z * z / (2 * n_ok)
        half = z * np.sqrt(p * (1 - p) / n_ok + z * z / (4 * n_ok * n_ok))
        out[ok] = np.clip((centre - half) / (1 + z * z / n_ok), 0.0, 1.0)
    else:
        raise ValueError(f"unknown method {method!r}; use 'clopper_pearson' or 'wilson'")
    return float(out) if scalar else out


def _lowest_threshold(
    conf: np.ndarray,
    correct: np.ndarray,
    target_precision: float,
    confidence_level: float,
    method: str,
) -> tuple[float | None, float]:
    """Lowest cut t with lower-bound(precision of conf >= t) >= target, and the bound there.

    Candidate cuts are the distinct confidence values (a cut inside a run of ties is not
    realisable). Returns (None, best bound among cuts whose point estimate reaches the
    target, else 0.0) when no cut qualifies.
    """
    if conf.size == 0:
        return None, 0.0
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    k = np.cumsum(correct[order])
    n = np.arange(1, c.size + 1)
    last_of_tie = np.append(c[1:] < c[:-1], True)
    cut_idx = np.flatnonzero(last_of_tie)
    # The bound never exceeds the point estimate: only cuts with k/n >= target can qualify.
    hopeful = cut_idx[k[cut_idx] >= target_precision * n[cut_idx]]
    if hopeful.size == 0:
        return None, 0.0
    lb = np.asarray(precision_lower_bound(k[hopeful], n[hopeful], confidence_level, method))
    ok = np.flatnonzero(lb >= target_precision)
    if ok.size == 0:
        return None, float(lb.max())
    best = ok[-1]  # cut indices ascend as confidence descends: last valid = lowest t
    return float(c[hopeful[best]]), float(lb[best])


@dataclass
class ThresholdResult:
    """Per-class acceptance thresholds and the evidence behind each.

    ``source`` is ``"class"`` (own validation evidence), ``"global"`` (too few validation
    items predicted as the class, so the pooled threshold is used) or ``"unreachable"``
    (no cut reaches the target; the threshold is ``NEVER_ACCEPT`` = 1.01, above any
    confidence, so nothing of that class is auto-accepted).
    """

    thresholds: dict[str, float]
    source: dict[str, str]
    global_threshold: float
    support: dict[str, int]
    lower_bound_at_threshold: dict[str, float]
    target_precision: float = 0.0
    confidence_level: float = 0.95
    method: str = "clopper_pearson"
    global_lower_bound: float = 0.0

    def to_json(self) -> dict:
        """Plain-JSON form for the model card / summary.json."""
        return {
            "thresholds": dict(self.thresholds),
            "source": dict(self.source),
            "global_threshold": self.global_threshold,
            "global_lower_bound": self.global_lower_bound,
            "support": dict(self.support),
            "lower_bound_at_threshold": dict(self.lower_bound_at_threshold),
            "target_precision": self.target_precision,
            "confidence_level": self.confidence_level,
            "method": self.method,
        }

    @classmethod
    def from_json(cls, d: dict) -> ThresholdResult:
        """Inverse of :meth:`to_json` (model cards are read back at labeling time)."""
        return cls(
            thresholds={k: float(v) for k, v in d["thresholds"].items()},
            source=dict(d["source"]),
            global_threshold=float(d["global_threshold"]),
            support={k: int(v) for k, v in d["support"].items()},
            lower_bound_at_threshold={
                k: float(v) for k, v in d["lower_bound_at_threshold"].items()
            },
            target_precision=float(d.get("target_precision", 0.0)),
            confidence_level=float(d.get("confidence_level", 0.95)),
            method=str(d.get("method", "clopper_pearson")),
            global_lower_bound=float(d.get("global_lower_bound", 0.0)),
        )


def choose_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    target_precision: float,
    confidence_level: float = 0.95,
    min_support: int = 30,
    method: str = "clopper_pearson",
) -> ThresholdResult:
    """Per-class confidence thresholds whose precision *lower bound* reaches the target.

    For class c, take validation items predicted as c, sorted by confidence; the threshold is
    the lowest confidence t such that the one-sided ``confidence_level`` lower bound
    (``method``) of precision among {pred == c, conf >= t} is >= ``target_precision`` —
    maximal coverage subject to the bound. This is a lower-bound rule, deliberately stricter
    than requiring the point estimate to reach the target. (Scanning all cuts and keeping the
    lowest valid one is a mild multiple-look; the bound's conservatism and the review-sample
    estimate in ``evaluate`` are the checks on it.)

    Classes with fewer than ``min_support`` predicted items use the global threshold,
    computed the same way on all items pooled (top-label correctness). A class or global set
    that cannot reach the target gets 1.01 (accept nothing) and source ``"unreachable"``.
    ``lower_bound_at_threshold`` holds the bound of the evidence used (the pooled bound for
    ``"global"``); for ``"unreachable"`` it is the best bound of any cut whose point estimate
    reaches the target (0.0 if none does).
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    p = np.asarray(probs, dtype=np.float64)
    conf, correct = _top_label(p, labels)
    if p.shape[1] != len(classes):
        raise ValueError(f"probs has {p.shape[1]} columns but {len(classes)} classes were given")
    pred = np.argmax(p, axis=1) if p.shape[0] else np.zeros(0, dtype=np.int64)

    g_t, g_lb = _lowest_threshold(conf, correct, target_precision, confidence_level, method)
    global_threshold = NEVER_ACCEPT if g_t is None else g_t

    thresholds: dict[str, float] = {}
    source: dict[str, str] = {}
    support: dict[str, int] = {}
    lbs: dict[str, float] = {}
    counts = np.bincount(pred, minlength=len(classes))
    for ci, name in enumerate(classes):
        support[name] = int(counts[ci])
        if support[name] < min_support:
            thresholds[name] = global_threshold
            source[name] = "unreachable" if g_t is None else "global"
            lbs[name] = g_lb
            continue
        mask = pred == ci
        t, lb = _lowest_threshold(
            conf[mask], correct[mask], target_precision, confidence_level, method
        )
        thresholds[name] = NEVER_ACCEPT if t is None else t
        source[name] = "unreachable" if t is None else "class"
        lbs[name] = lb
    return ThresholdResult(
        thresholds=thresholds,
        source=source,
        global_threshold=global_threshold,
        support=support,
        lower_bound_at_threshold=lbs,
        target_precision=float(target_precision),
        confidence_level=float(confidence_level),
        method=method,
        global_lower_bound=g_lb,
    )


def coverage_precision_curve(
    probs: np.ndarray, labels: np.ndarray, n_points: int = 101
) -> dict[str, list[float]]:
    """Coverage and precision of ``conf >= t`` on an even grid of t in [0, 1], for plotting.

    Where nothing is covered the precision is reported as 1.0 (vacuous), keeping the lists
    JSON-clean floats; coverage 0 marks those points.
    """
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    conf, correct = _top_label(probs, labels)
    grid = np.round(np.linspace(0.0, 1.0, n_points), 12)  # 0.7, not 0.7000000000000001
    order = np.argsort(conf, kind="stable")
    c = conf[order]
    # correct items at or above position i, via a reversed cumulative sum.
    tail_correct = np.append(np.cumsum(correct[order][::-1])[::-1], 0)
    start = np.searchsorted(c, grid, side="left")
    covered = c.size - start
    hit = tail_correct[start]
    n = max(c.size, 1)
    precision = np.where(covered > 0, hit / np.maximum(covered, 1), 1.0)
    return {
        "threshold": grid.tolist(),
        "coverage": (covered / n).tolist(),
        "precision": precision.tolist(),
    }
