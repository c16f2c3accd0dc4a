"""Whole-set trust for multilabel rows: the per-class margins, tightened until the *sets* of
accepted calibration items are right often enough.

Each class decided at precision (and negative predictive value) p makes a row with k
classes right only about p**k of the time: errors compound across the classes. An accepted
row's promise is its whole set, so the per-class error budget 1 - target is shrunk
(budget x 1 - target, `BUDGETS` from loose to strict) until the one-sided lower bound of
exact-set accuracy among the accepted calibration items reaches the target; the first
budget that does is kept. When none does, nothing is accepted: the budget that came closest
keeps its positive sides (and its per-class explanations), but no class may be called
negative, so every row has an undecided class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raylabel.stats.multilabel import (
    NEVER_NEGATIVE,
    MultiLabelThresholds,
    choose_multilabel_thresholds,
    decide,
    thresholds_arrays,
)
from raylabel.stats.thresholds import precision_lower_bound

#: per-class error budgets tried, as a share of 1 - target (1 = the target itself per class)
BUDGETS = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.02)


@dataclass
class SetRule:
    """Which per-class budget the set-level bound chose, and the evidence at it."""

    budget: float  # share of 1 - target each class may err
    class_target: float  # the per-class precision / NPV target that implies
    accepted: float  # effective accepted calibration items at it
    exact: float  # of those, effectively with the exact set right
    lower_bound: float  # one-sided lower bound of exact-set accuracy among them
    reached: bool  # the bound reaches the target (else nothing is accepted)
    tried: list[dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the card's `training.exact_set_rule`."""
        return dict(self.__dict__)


def _effective(weight: np.ndarray, ok: np.ndarray) -> tuple[float, float]:
    """(effective n, effective correct) of weighted items, Kish's effective sample size."""
    if weight.size == 0 or weight.sum() <= 0:
        return 0.0, 0.0
    n_eff = float(weight.sum() ** 2 / np.sum(weight * weight))
    return n_eff, float(np.sum(weight * ok) / weight.sum() * n_eff)


def exact_set_evidence(
    probs: np.ndarray, targets: np.ndarray, thr: MultiLabelThresholds, weights: np.ndarray
) -> tuple[float, float]:
    """(effective accepted items, effective exactly-right ones) of calibration items under
    `thr`'s decisions."""
    pos, neg = thresholds_arrays(thr)
    positive, undecided = decide(probs, pos, neg)
    accepted = ~undecided.any(1)
    exact = (positive == (targets > 0.5)).all(1)
    return _effective(weights[accepted], exact[accepted])


def exact_set_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    target: float,
    confidence_level: float = 0.95,
    method: str = "clopper_pearson",
    weights: np.ndarray | None = None,
) -> tuple[MultiLabelThresholds, SetRule]:
    """The loosest per-class budget whose accepted calibration sets are exactly right with a
    lower bound >= `target` (see the module rule); (thresholds, the rule's evidence)."""
    p = np.asarray(probs, dtype=np.float64)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    tried: list[dict[str, float]] = []
    best: tuple[float, MultiLabelThresholds] | None = None
    for budget in BUDGETS:
        class_target = 1.0 - (1.0 - target) * budget
        thr = choose_multilabel_thresholds(
            p, targets, classes, class_target, confidence_level, method, weights=w
        )
        n, k = exact_set_evidence(p, targets, thr, w)
        lb = float(precision_lower_bound(k, n, confidence_level, method)) if n > 0 else 0.0
        tried.append({"budget": budget, "accepted": n, "exact": k, "lower_bound": lb})
        if n > 0 and lb >= target:
            rule = SetRule(budget, class_target, n, k, lb, True, tried)
            return thr, rule
        if best is None or lb > best[0]:
            best = (lb, thr)
    assert best is not None
    lb, thr = best  # the closest the sets came: its per-class numbers explain the miss
    for name in thr.classes:  # nothing may be accepted: no class is ever called negative
        thr.negative[name] = NEVER_NEGATIVE
        thr.negative_source[name] = "unreachable"
    budget = (1.0 - thr.target_precision) / (1.0 - target) if target < 1.0 else 1.0
    return thr, SetRule(round(budget, 6), thr.target_precision, 0.0, 0.0, lb, False, tried)
