"""The exact-set rule: per-class margins tightened until whole accepted sets meet the target."""

from __future__ import annotations

import numpy as np

from raylabel.stats.multilabel import NEVER_NEGATIVE, decide, thresholds_arrays
from raylabel.stats.multilabel_sets import BUDGETS, exact_set_thresholds


def _calibrated(n: int, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are calibrated probabilities: truth drawn from the score itself."""
    rng = np.random.default_rng(seed)
    probs = rng.beta(noise, noise, size=(n, k))
    targets = (rng.random((n, k)) < probs).astype(np.float64)
    return probs, targets


def _exact_set_accuracy(probs: np.ndarray, targets: np.ndarray, thr: object) -> float:
    pos, neg = thresholds_arrays(thr)
    positive, undecided = decide(probs, pos, neg)
    acc = ~undecided.any(1)
    return float((positive == (targets > 0.5)).all(1)[acc].mean()) if acc.any() else 1.0


def test_sets_are_tightened_until_the_bound_holds_and_hold_on_fresh_data() -> None:
    probs, targets = _calibrated(3000, 5, 0.15, seed=1)
    thr, rule = exact_set_thresholds(probs, targets, list("abcde"), 0.9)
    assert rule.reached and rule.lower_bound >= 0.9
    assert rule.budget < 1.0  # five classes at 0.9 each would not do
    assert rule.tried[0]["lower_bound"] < 0.9
    fresh_p, fresh_t = _calibrated(200_000, 5, 0.15, seed=2)
    assert _exact_set_accuracy(fresh_p, fresh_t, thr) >= 0.9


def test_one_class_needs_no_tightening() -> None:
    probs, targets = _calibrated(4000, 1, 0.2, seed=3)
    _, rule = exact_set_thresholds(probs, targets, ["a"], 0.9)
    assert rule.reached and rule.budget == 1.0


def test_hopeless_sets_accept_nothing() -> None:
    rng = np.random.default_rng(4)
    probs = np.full((300, 3), 0.5) + rng.normal(0, 0.01, (300, 3))
    targets = (rng.random((300, 3)) < 0.5).astype(np.float64)
    thr, rule = exact_set_thresholds(probs, targets, ["a", "b", "c"], 0.95)
    assert not rule.reached and len(rule.tried) == len(BUDGETS)
    assert all(u == NEVER_NEGATIVE for u in thr.negative.values())
    _, undecided = decide(probs, *thresholds_arrays(thr))
    assert undecided.any(1).all()  # no row can be accepted
