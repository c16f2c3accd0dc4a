"""Known-answer tests for raylabel.calibrate (temperature scaling, bounds, thresholds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from raylabel.stats import calibration as cal


def _planted(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits z and labels drawn from softmax(z), so T = 1 is the right temperature for z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=(n, n_classes))
    p = cal.softmax(z)
    u = rng.random(n)[:, None]
    labels = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(labels, n_classes - 1)


def test_softmax_is_stable_and_normalised() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    p = cal.softmax(logits)
    assert p.dtype == np.float64
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    hot = cal.softmax(logits[1:], temperature=0.5)
    np.testing.assert_allclose(hot, cal.softmax(2 * logits[1:]))
    with pytest.raises(ValueError):
        cal.softmax(logits, temperature=0.0)


@pytest.mark.parametrize("t0", [2.5, 0.5])
def test_fit_temperature_recovers_planted_temperature(t0: float) -> None:
    z, y = _planted(6000, 5, seed=11)
    scaled = z * t0  # over-confident (T0 > 1) or under-confident (T0 < 1) model
    t = cal.fit_temperature(scaled, y)
    assert abs(t - t0) / t0 < 0.10
    ece_before = cal.expected_calibration_error(cal.softmax(scaled), y)
    ece_after = cal.expected_calibration_error(cal.softmax(scaled, t), y)
    assert ece_after < ece_before
    assert ece_after < 0.03


def test_fit_temperature_empty_and_bounds() -> None:
    assert cal.fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    z, y = _planted(500, 3, seed=2)
    t = cal.fit_temperature(z * 100.0, y, bounds=(0.5, 4.0))
    assert 0.5 <= t <= 4.0


def test_ece_and_reliability_known_answer() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # bin 0.9: conf .9 acc .5 (gap .4, 2 items); bin 0.6: conf .6 acc 1 (gap .4, 2 items)
    assert cal.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.4)
    curve = cal.reliability_curve(probs, labels, n_bins=10)
    json.dumps(curve)
    assert curve["bin_lower"] == pytest.approx([0.6, 0.9])
    assert curve["bin_upper"] == pytest.approx([0.7, 1.0])
    assert curve["confidence"] == pytest.approx([0.6, 0.9])
    assert curve["accuracy"] == pytest.approx([1.0, 0.5])
    assert curve["count"] == [2.0, 2.0]
    assert cal.expected_calibration_error(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 0.0


def test_precision_lower_bound_known_answers() -> None:
    # All-correct: Clopper-Pearson one-sided lower bound is alpha ** (1/n).
    assert cal.precision_lower_bound(10, 10, 0.95) == pytest.approx(0.05**0.1)
    assert cal.precision_lower_bound(0, 10, 0.95) == 0.0
    assert cal.precision_lower_bound(0, 0, 0.95) == 0.0
    assert cal.precision_lower_bound(0, 0, 0.95, method="wilson") == 0.0
    # One-sided 95% lower = lower end of the two-sided 90% exact interval.
    exact = stats.binomtest(87, 100).proportion_ci(confidence_level=0.90, method="exact").low
    assert cal.precision_lower_bound(87, 100, 0.95) == pytest.approx(exact, rel=1e-9)
    wil = stats.binomtest(5, 10).proportion_ci(confidence_level=0.90, method="wilson").low
    assert cal.precision_lower_bound(5, 10, 0.95, method="wilson") == pytest.approx(wil, rel=1e-9)
    arr = cal.precision_lower_bound(np.array([0, 5, 10]), np.array([0, 10, 10]), 0.95)
    assert isinstance(arr, np.ndarray)
    assert arr.shape == (3,)
    assert arr[0] == 0.0
    assert arr[2] == pytest.approx(0.05**0.1)
    with pytest.raises(ValueError):
        cal.precision_lower_bound(1, 2, 0.95, method="nope")


def _validation(counts: dict[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated 3-class validation data: P(correct) = confidence, ties from 2-decimal rounding."""
    rng = np.random.default_rng(seed)
    preds = np.concatenate([np.full(n, c) for c, n in counts.items()])
    conf = np.round(rng.uniform(0.4, 1.0, preds.size), 2)
    correct = rng.random(preds.size) < conf
    other = (preds + rng.integers(1, 3, preds.size)) % 3
    labels = np.where(correct, preds, other)
    probs = np.empty((preds.size, 3))
    probs[:] = ((1 - conf) / 2)[:, None]
    probs[np.arange(preds.size), preds] = conf
    return probs, labels


def _cp(conf: np.ndarray, correct: np.ndarray, t: float) -> float:
    sel = conf >= t
    return float(cal.precision_lower_bound(int(correct[sel].sum()), int(sel.sum()), 0.95))


def test_choose_thresholds_lowest_valid_cut_per_class() -> None:
    probs, labels = _validation({0: 3000, 1: 1500, 2: 12}, seed=5)
    classes = ["a", "b", "c"]
    target = 0.9
    res = cal.choose_thresholds(probs, labels, classes, target, min_support=30)
    pred = probs.argmax(1)
    conf = probs.max(1)
    correct = pred == labels
    assert res.support == {"a": 3000, "b": 1500, "c": 12}
    for ci, name in enumerate(classes[:2]):
        assert res.source[name] == "class"
        m = pred == ci
        t = res.thresholds[name]
        assert t in set(conf[m].tolist())  # a realisable cut
        lb = _cp(conf[m], correct[m], t)
        assert lb >= target
        assert res.lower_bound_at_threshold[name] == pytest.approx(lb)
        lower = np.unique(conf[m][conf[m] < t])
        assert lower.size > 0
        assert _cp(conf[m], correct[m], lower[-1]) < target  # the next lower candidate fails
        assert all(_cp(conf[m], correct[m], x) < target for x in lower)  # ... and all below
    # Thin class: falls back to the pooled threshold, computed the same way.
    assert res.source["c"] == "global"
    assert res.thresholds["c"] == res.global_threshold
    assert _cp(conf, correct, res.global_threshold) >= target
    assert _cp(conf, correct, np.unique(conf[conf < res.global_threshold])[-1]) < target
    back = cal.ThresholdResult.from_json(json.loads(json.dumps(res.to_json())))
    assert back == res


def test_choose_thresholds_unreachable_and_wilson() -> None:
    probs, labels = _validation({0: 400, 1: 400, 2: 5}, seed=9)
    res = cal.choose_thresholds(probs, labels, ["a", "b", "c"], 0.999)
    assert set(res.source.values()) == {"unreachable"}
    assert res.global_threshold == cal.NEVER_ACCEPT == 1.01
    assert all(t == 1.01 for t in res.thresholds.values())
    assert all(0.0 <= lb < 0.999 for lb in res.lower_bound_at_threshold.values())
    # Wilson is less conservative than Clopper-Pearson: never a higher threshold.
    cp = cal.choose_thresholds(probs, labels, ["a", "b", "c"], 0.85)
    wi = cal.choose_thresholds(probs, labels, ["a", "b", "c"], 0.85, method="wilson")
    for name in ("a", "b"):
        assert wi.thresholds[name] <= cp.thresholds[name]


def test_choose_thresholds_thin_class_unreachable_globally() -> None:
    probs, labels = _validation({0: 40, 1: 3, 2: 3}, seed=1)
    res = cal.choose_thresholds(probs, labels, ["a", "b", "c"], 0.99, min_support=30)
    assert res.source["b"] == "unreachable"
    assert res.thresholds["b"] == 1.01


def test_coverage_precision_curve_known_answer() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 0])  # correct: T, F, T, T; confidences .9 .8 .7 .6
    curve = cal.coverage_precision_curve(probs, labels, n_points=11)
    json.dumps(curve)
    thr = np.array(curve["threshold"])
    cov = dict(zip(np.round(thr, 1).tolist(), curve["coverage"], strict=True))
    prec = dict(zip(np.round(thr, 1).tolist(), curve["precision"], strict=True))
    assert cov[0.0] == 1.0 and prec[0.0] == pytest.approx(0.75)
    assert cov[0.7] == 0.75 and prec[0.7] == pytest.approx(2 / 3)
    assert cov[0.9] == 0.25 and prec[0.9] == 1.0
    assert cov[1.0] == 0.0 and prec[1.0] == 1.0
