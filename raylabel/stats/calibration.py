"""Confidence calibration (pure numpy/scipy, no Ray).

Temperature scaling makes the model's confidence mean what it says; the threshold rule
(`raylabel.thresholds`) then accepts a label only where a one-sided lower confidence
bound of precision on calibration items reaches the target.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from raylabel.stats.thresholds import (
    NEVER_ACCEPT,
    ThresholdResult,
    choose_thresholds,
    precision_lower_bound,
)

__all__ = [
    "NEVER_ACCEPT",
    "ThresholdResult",
    "choose_thresholds",
    "coverage_precision_curve",
    "expected_calibration_error",
    "fit_temperature",
    "precision_lower_bound",
    "reliability_curve",
    "softmax",
]


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
