"""Per-class acceptance thresholds backed by a lower confidence bound (numpy/scipy only).

A label is auto-accepted only where a one-sided lower bound of precision, computed on
calibration items the model did not train on, reaches the target. The calibration items
are seed items (out-of-fold predictions, or a held-out split) and, once reviewers have
checked a night's stratified sample, those reviewed drop items too: their inclusion
weights enter through Kish's effective sample size, so a heavily weighted review counts
for what it is worth and no more.

Rule, per class c (``thresholds_from_evidence``):
1. ``class``: c has at least ``min_support`` calibration items predicted as c and some
   confidence cut of its own reaches the target; the lowest such cut is its threshold.
2. ``global``: otherwise c uses the pooled cut (all items, top-label correctness) unless
   c's own items at or above that cut contradict it (their precision's *upper* bound is
   below the target).
3. ``unreachable``: neither holds; the threshold is 1.01 and nothing of c is accepted.
Every class also gets an explanation in numbers (``explanations``): how many calibration
items it has, the best bound any cut reaches, and how many more labeled or reviewed
items would let it reach the target on its own evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

#: Threshold given to a class that can never be accepted (confidences never exceed 1.0).
NEVER_ACCEPT = 1.01
#: The bounds `qc.bound` accepts.
BOUNDS = ("clopper_pearson", "wilson", "point")


def precision_lower_bound(
    k: np.ndarray | float,
    n: np.ndarray | float,
    confidence_level: float,
    method: str = "clopper_pearson",
) -> np.ndarray | float:
    """One-sided lower confidence bound for a binomial proportion k/n (0.0 where n == 0).

    ``clopper_pearson`` is exact (never under-covers), ``wilson`` is the score bound
    (tighter, close to nominal), ``point`` is no bound at all: k/n itself (SageMaker Ground
    Truth's rule, which misses the target about half the time when the true precision sits
    at it). k and n may be fractional (effective counts of weighted items). Vectorised over
    arrays; scalars in give a float out.
    """
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    scalar = np.ndim(k) == 0 and np.ndim(n) == 0
    kk, nn = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    if np.any(kk < 0) or np.any(kk > nn * (1 + 1e-9) + 1e-12):
        raise ValueError("need 0 <= k <= n")
    kk = np.minimum(kk, nn)
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
    elif method == "point":
        ok = nn > 0
        out[ok] = kk[ok] / nn[ok]
    else:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(BOUNDS)}")
    return float(out) if scalar else out


def precision_upper_bound(
    k: np.ndarray | float,
    n: np.ndarray | float,
    confidence_level: float,
    method: str = "clopper_pearson",
) -> np.ndarray | float:
    """One-sided upper bound of k/n (1.0 where n == 0): the lower bound of the misses, mirrored."""
    scalar = np.ndim(k) == 0 and np.ndim(n) == 0
    kk, nn = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    misses = np.maximum(nn - kk, 0.0)
    lower = np.asarray(precision_lower_bound(misses, nn, confidence_level, method))
    out = np.where(nn > 0, 1.0 - lower, 1.0)
    return float(out) if scalar else out


def all_correct_items_needed(target: float, confidence_level: float, method: str) -> int:
    """The fewest items, all correct, whose bound reaches the target (59 for CP, 0.95/0.95)."""
    n = 1
    while precision_lower_bound(n, n, confidence_level, method) < target and n < 10**6:
        n = n * 2
    lo, hi = max(1, n // 2), n
    while lo < hi:
        mid = (lo + hi) // 2
        if precision_lower_bound(mid, mid, confidence_level, method) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Evidence:
    """Calibration items as the threshold rule sees them.

    ``weight`` is 1 for seed items; reviewed drop items carry their sample design weight,
    rescaled so a night's reviews average 1 (see ``review_weights``).
    """

    pred: np.ndarray
    conf: np.ndarray
    correct: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.pred)
        if not (len(self.conf) == len(self.correct) == len(self.weight) == n):
            raise ValueError("Evidence arrays must have the same length")
        if n and (np.any(self.weight <= 0) or not np.all(np.isfinite(self.weight))):
            raise ValueError("Evidence weights must be finite and > 0")

    @classmethod
    def from_probs(
        cls, probs: np.ndarray, labels: np.ndarray, weight: np.ndarray | None = None
    ) -> Evidence:
        """Top-label evidence of calibrated probabilities (items x classes)."""
        p = np.asarray(probs, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        if p.ndim != 2:
            raise ValueError(f"probs must be 2-D (items x classes), got shape {p.shape}")
        if y.shape[0] != p.shape[0]:
            raise ValueError(f"probs has {p.shape[0]} rows but labels has {y.shape[0]}")
        pred = np.argmax(p, axis=1) if p.shape[0] else np.zeros(0, dtype=np.int64)
        conf = p[np.arange(p.shape[0]), pred] if p.shape[0] else np.zeros(0)
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
        return cls(pred.astype(np.int64), conf, pred == y, w)

    @classmethod
    def empty(cls) -> Evidence:
        """No evidence: returned when there are no reviews, so callers never need a None case."""
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), np.zeros(0))

    def concat(self, other: Evidence) -> Evidence:
        """Two bodies of evidence as one (calibration items plus reviewed items), each item keeping
        its weight."""
        return Evidence(
            np.concatenate([self.pred, other.pred]).astype(np.int64),
            np.concatenate([self.conf, other.conf]),
            np.concatenate([self.correct, other.correct]).astype(bool),
            np.concatenate([self.weight, other.weight]),
        )

    def subset(self, mask: np.ndarray) -> Evidence:
        """The evidence of the selected items (e.g. one class's predictions), weights kept."""
        return Evidence(self.pred[mask], self.conf[mask], self.correct[mask], self.weight[mask])

    def __len__(self) -> int:
        return len(self.pred)


def review_weights(weights: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Design weights rescaled to average 1 within each group (one group per reviewed run).

    Within a run the relative weights keep the stratified estimate unbiased for that drop;
    the rescaling makes a reviewed item count as much as a seed item on average, so neither
    source swamps the other because one drop was large.
    """
    w = np.asarray(weights, dtype=np.float64)
    g = np.asarray(list(groups), dtype=object)
    out = np.ones_like(w)
    for key in np.unique(g) if len(g) else []:
        m = g == key
        out[m] = w[m] / w[m].mean()
    return out


@dataclass(frozen=True)
class _Cuts:
    """Candidate cuts of one item set, highest confidence first, with effective counts."""

    conf: np.ndarray  # confidence at each cut
    k: np.ndarray  # effective correct items at or above the cut
    n: np.ndarray  # effective items at or above the cut
    raw_n: np.ndarray  # plain item count at or above the cut

    @classmethod
    def of(cls, conf: np.ndarray, correct: np.ndarray, weight: np.ndarray) -> _Cuts:
        order = np.argsort(-conf, kind="stable")
        c, y, w = conf[order], correct[order].astype(np.float64), weight[order]
        big_w = np.cumsum(w)
        big_k = np.cumsum(w * y)
        w2 = np.cumsum(w * w)
        n_eff = big_w * big_w / w2 if len(w) else big_w
        k_eff = big_k / np.maximum(big_w, 1e-300) * n_eff
        last_of_tie = np.append(c[1:] < c[:-1], True) if len(c) else np.zeros(0, bool)
        idx = np.flatnonzero(last_of_tie)  # a cut inside a run of ties is not realisable
        raw = np.arange(1, len(c) + 1)
        return cls(c[idx], k_eff[idx], n_eff[idx], raw[idx])


def _lowest_cut(
    cuts: _Cuts, target: float, level: float, method: str
) -> tuple[float | None, float, float]:
    """(lowest cut whose bound reaches the target or None, the bound there, best bound)."""
    if cuts.conf.size == 0:
        return None, 0.0, 0.0
    hopeful = np.flatnonzero(cuts.k >= target * cuts.n - 1e-9)  # bound <= point estimate
    if hopeful.size == 0:
        return None, 0.0, 0.0
    lb = np.asarray(precision_lower_bound(cuts.k[hopeful], cuts.n[hopeful], level, method))
    ok = np.flatnonzero(lb >= target)
    if ok.size == 0:
        return None, float(lb.max()), float(lb.max())
    best = ok[-1]  # cuts ascend as confidence descends: the last valid one is the lowest t
    return float(cuts.conf[hopeful[best]]), float(lb[best]), float(lb.max())


def lowest_cut(
    conf: np.ndarray,
    correct: np.ndarray,
    weight: np.ndarray | None,
    target: float,
    level: float,
    method: str = "clopper_pearson",
) -> float | None:
    """The lowest confidence cut whose precision bound reaches the target, or None: the
    building block of every rule here (and of the baselines the benchmark compares)."""
    w = np.ones(len(conf)) if weight is None else np.asarray(weight, dtype=np.float64)
    return _lowest_cut(_Cuts.of(np.asarray(conf), np.asarray(correct), w), target, level, method)[0]


def _scale_needed(k: np.ndarray, n: np.ndarray, target: float, level: float, method: str) -> float:
    """Smallest factor s so that some cut, with its precision unchanged and s times the
    items, reaches the target (inf when no cut's precision exceeds the target)."""
    good = k > target * n + 1e-12
    if not good.any():
        return math.inf
    kk, nn = k[good], n[good]
    lo, hi = np.ones_like(nn), np.full_like(nn, 1e4)
    reach = np.asarray(precision_lower_bound(kk * hi, nn * hi, level, method)) >= target
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        ok = np.asarray(precision_lower_bound(kk * mid, nn * mid, level, method)) >= target
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    scale = np.where(reach, hi, np.inf)
    return float(scale.min())


def explain_class(
    conf: np.ndarray,
    correct: np.ndarray,
    weight: np.ndarray,
    target: float,
    level: float,
    method: str,
) -> dict[str, Any]:
    """Why a class can or cannot be accepted on its own evidence, in numbers."""
    items = len(conf)
    cuts = _Cuts.of(conf, correct, weight)
    t, _, best_lb = _lowest_cut(cuts, target, level, method)
    info: dict[str, Any] = {
        "items": items,
        "effective_items": round(float(cuts.n[-1]), 2) if items else 0.0,
        "correct_share": float(np.average(correct, weights=weight)) if items else None,
        "best_lower_bound": round(best_lb, 4),
        "best_cut": None,
        "items_at_best_cut": 0,
        "precision_at_best_cut": None,
        "own_threshold": t,
        "more_items_needed": 0 if t is not None else None,
    }
    if items == 0:
        info["more_items_needed"] = all_correct_items_needed(target, level, method)
        return info
    lbs = np.asarray(precision_lower_bound(cuts.k, cuts.n, level, method))
    j = int(np.argmax(lbs))
    info["best_cut"] = float(cuts.conf[j])
    info["items_at_best_cut"] = int(cuts.raw_n[j])
    info["precision_at_best_cut"] = float(cuts.k[j] / max(cuts.n[j], 1e-12))
    if t is None:
        scale = _scale_needed(cuts.k, cuts.n, target, level, method)
        if math.isfinite(scale):
            info["more_items_needed"] = math.ceil((scale - 1.0) * items)
    return info


def explanation_line(name: str, ex: dict[str, Any], source: str, target: float) -> str:
    """One line a person can act on: what the class has, and what would make it reachable."""
    if source == "class":
        return (
            f"{name}: own threshold {ex['own_threshold']:.3f} from {ex['items']} calibration "
            f"items (best lower bound {ex['best_lower_bound']:.3f})"
        )
    if ex["items"] == 0:
        head = f"{name}: no calibration item is predicted {name}"
    else:
        head = (
            f"{name}: {ex['items']} calibration items predicted {name}; best lower bound "
            f"{ex['best_lower_bound']:.3f} ({ex['items_at_best_cut']} items at confidence >= "
            f"{ex['best_cut']:.3f}, precision {ex['precision_at_best_cut']:.3f})"
        )
    more = ex.get("more_items_needed")
    if more is None:
        need = (
            f"its precision never exceeds {target:g} at any cut: more items will not help "
            "until the model improves"
        )
    else:
        need = f"about {more} more labeled or reviewed {name} items would reach {target:g} alone"
    tail = {
        "global": "uses the pooled threshold meanwhile",
        "unreachable": "accepts nothing",
    }.get(source, source)
    return f"{head}; {need}; {tail}"


@dataclass
class ThresholdResult:
    """Per-class acceptance thresholds and the evidence behind each.

    ``source`` is ``"class"`` (own evidence), ``"global"`` (the pooled threshold) or
    ``"unreachable"`` (threshold ``NEVER_ACCEPT`` = 1.01: nothing of that class is accepted).
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
    min_support: int = 30
    explanations: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
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
            "min_support": self.min_support,
            "explanations": {k: dict(v) for k, v in self.explanations.items()},
            "calibration": dict(self.calibration),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ThresholdResult:
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
            min_support=int(d.get("min_support", 30)),
            explanations={k: dict(v) for k, v in d.get("explanations", {}).items()},
            calibration=dict(d.get("calibration", {})),
        )

    def explanation_lines(self, only_weak: bool = True) -> list[str]:
        """Lines for classes that do not stand on their own evidence (or all of them)."""
        out = []
        for name, src in self.source.items():
            if only_weak and src == "class":
                continue
            ex = self.explanations.get(name)
            if ex is not None:
                out.append(explanation_line(name, ex, src, self.target_precision))
        return out


def choose_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    target_precision: float,
    confidence_level: float = 0.95,
    min_support: int = 30,
    method: str = "clopper_pearson",
    weights: np.ndarray | None = None,
) -> ThresholdResult:
    """Thresholds from calibrated probabilities of calibration items (see the module rule).

    Scanning all cuts and keeping the lowest valid one is a mild multiple look; the
    small-seed benchmark (bench/small_seed.py) measures how often accepted precision falls
    below the target, and the review-sample estimate in ``evaluate`` checks every night.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] != len(classes):
        raise ValueError(f"probs has {p.shape[1]} columns but {len(classes)} classes were given")
    ev = Evidence.from_probs(p, labels, weights)
    return thresholds_from_evidence(
        ev, classes, target_precision, confidence_level, min_support, method
    )


def thresholds_from_evidence(
    ev: Evidence,
    classes: Sequence[str],
    target_precision: float,
    confidence_level: float = 0.95,
    min_support: int = 30,
    method: str = "clopper_pearson",
) -> ThresholdResult:
    """The module's rule applied to calibration evidence (seed and reviewed items)."""
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    if method not in BOUNDS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(BOUNDS)}")
    target, level = float(target_precision), float(confidence_level)
    g_t, g_lb, g_best = _lowest_cut(_Cuts.of(ev.conf, ev.correct, ev.weight), target, level, method)
    global_threshold = NEVER_ACCEPT if g_t is None else g_t
    res = ThresholdResult(
        thresholds={},
        source={},
        global_threshold=global_threshold,
        support={},
        lower_bound_at_threshold={},
        target_precision=target,
        confidence_level=level,
        method=method,
        global_lower_bound=g_lb if g_t is not None else g_best,
        min_support=int(min_support),
    )
    for ci, name in enumerate(classes):
        own = ev.subset(ev.pred == ci)
        ex = explain_class(own.conf, own.correct, own.weight, target, level, method)
        res.explanations[name] = ex
        res.support[name] = len(own)
        if len(own) >= min_support and ex["own_threshold"] is not None:
            res.thresholds[name] = float(ex["own_threshold"])
            res.source[name] = "class"
            res.lower_bound_at_threshold[name] = _bound_at(own, ex["own_threshold"], level, method)
        elif g_t is not None and not _contradicts(own, g_t, target, level, method):
            res.thresholds[name] = global_threshold
            res.source[name] = "global"
            res.lower_bound_at_threshold[name] = g_lb
        else:
            res.thresholds[name] = NEVER_ACCEPT
            res.source[name] = "unreachable"
            res.lower_bound_at_threshold[name] = float(ex["best_lower_bound"])
    return res


def _bound_at(ev: Evidence, t: float, level: float, method: str) -> float:
    sel = ev.conf >= t
    cuts = _Cuts.of(ev.conf[sel], ev.correct[sel], ev.weight[sel])
    return float(precision_lower_bound(cuts.k[-1], cuts.n[-1], level, method))


def _contradicts(ev: Evidence, t: float, target: float, level: float, method: str) -> bool:
    """The class's own items at or above the pooled cut say its precision is below target."""
    sel = ev.conf >= t
    if not sel.any():
        return False
    cuts = _Cuts.of(ev.conf[sel], ev.correct[sel], ev.weight[sel])
    return float(precision_upper_bound(cuts.k[-1], cuts.n[-1], level, method)) < target
