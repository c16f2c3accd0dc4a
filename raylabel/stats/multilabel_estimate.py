"""Estimates with intervals from a reviewed stratified sample of a multilabel run (no Ray).

Every figure is a ratio of two population totals, R = Y / Z, each row contributing y_i and
z_i (exact-set accuracy: y = predicted set == reviewed set, z = 1; micro precision:
y = true positives, z = predicted positives; per-class precision: y = 1[c predicted and
true], z = 1[c predicted]; and so on, restricted to a domain such as the accepted rows by
z = 0 outside it). The point estimate is the Hájek ratio sum_h (N_h/n_h) sum y /
sum_h (N_h/n_h) sum z; its variance is the Taylor-linearised stratified variance of the
residuals e_i = y_i - R z_i with the finite-population correction, which accounts for a
row's several class decisions being correlated. The interval is Korn–Graubard's, as in
:mod:`raylabel.stats.estimate` (with 0/1 outcomes the two computations are identical):
Clopper–Pearson at the effective sample size R(1-R)/v, degrees-of-freedom adjusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

from raylabel.stats.estimate import METHOD, Estimate


def _kg_interval(p: float, v: float, n_units: float, n_total: float, n_strata: int,
                 level: float) -> tuple[float, float, float]:  # fmt: skip
    """(lower, upper, n*) of Korn–Graubard's interval for a proportion p with variance v;
    ``n_units`` (the domain's reviewed decisions) stands in for n* when v = 0."""
    alpha = 1.0 - level
    n_eff = p * (1 - p) / v if (v > 0 and 0 < p < 1) else n_units
    if n_total - 1 >= 1:
        df = max(n_total - n_strata, 1.0)
        ratio = special.stdtrit(n_total - 1, 1 - alpha / 2) / special.stdtrit(df, 1 - alpha / 2)
        n_eff *= float(ratio) ** 2
    k, m = n_eff * p, n_eff * (1 - p)
    lower = float(special.betaincinv(k, m + 1, alpha / 2)) if k > 1e-9 else 0.0
    upper = float(special.betaincinv(k + 1, m, 1 - alpha / 2)) if m > 1e-9 else 1.0
    lower = 0.0 if math.isnan(lower) else lower
    upper = 1.0 if math.isnan(upper) else upper
    return max(0.0, min(lower, p)), min(1.0, max(upper, p)), n_eff


def ratio_estimate(
    code: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    pops: Sequence[float],
    confidence_level: float = 0.95,
    relevant: dict[str, int] | None = None,
    strata: Sequence[str] | None = None,
) -> Estimate:
    """Stratified ratio sum(w y) / sum(w z) over *reviewed* rows (``code``: their stratum
    index into ``pops`` = N_h), with 0 <= y <= z. Strata of ``relevant`` (name -> N_h) with
    no reviewed row in the domain's strata are reported as uncovered (``strata``: names)."""
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    pop = np.asarray(pops, dtype=np.float64)
    H = pop.size
    y, z = np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64)
    n = np.bincount(code, minlength=H).astype(np.float64)
    if np.any(n > pop):
        raise ValueError(f"stratum {int(np.flatnonzero(n > pop)[0])} has more reviews than items")
    covered = set() if strata is None else {strata[h] for h in np.flatnonzero(n > 0)}
    uncovered = sorted(s for s, N in (relevant or {}).items() if s not in covered and N > 0)
    w = np.divide(pop, n, out=np.zeros(H), where=n > 0)
    ysum, zsum = np.bincount(code, y, H), np.bincount(code, z, H)
    size = float(np.sum(w * zsum))
    base = {"method": METHOD, "confidence_level": confidence_level,
            "uncovered_population": int(sum((relevant or {})[s] for s in uncovered)),
            "uncovered_strata": uncovered}  # fmt: skip
    n_units = float(z.sum())
    if size <= 0:
        return Estimate(math.nan, 0.0, 1.0, 0, 0, n_effective=0.0, **base)
    p = float(np.sum(w * ysum)) / size
    e = y - p * z
    s1, s2 = np.bincount(code, e, H), np.bincount(code, e * e, H)
    var_h = np.where(n > 1, (s2 - s1**2 / np.maximum(n, 1)) / np.maximum(n - 1, 1), s2)
    fpc = np.clip(1.0 - np.divide(n, pop, out=np.ones(H), where=pop > 0), 0.0, 1.0)
    use = n > 0
    v = float(np.sum(pop[use] ** 2 * fpc[use] * np.maximum(var_h[use], 0.0) / n[use])) / size**2
    n_rev = int(np.count_nonzero(z > 0))
    if np.all(fpc[use & (zsum > 0)] == 0):  # a census of the domain: no sampling error
        return Estimate(p, p, p, n_rev, round(size), n_effective=math.inf, **base)
    lo, hi, n_eff = _kg_interval(p, v, n_units, float(n.sum()), int(use.sum()), confidence_level)
    return Estimate(p, lo, hi, n_rev, round(size), n_effective=n_eff, **base)


def _sets(column: pa.ChunkedArray) -> list[frozenset[str] | None]:
    """A list<string> column as sets (null stays None: not reviewed)."""
    return [None if v is None else frozenset(v) for v in column.to_pylist()]


def _frame(sample: pa.Table, truth_col: str) -> dict[str, Any]:
    """The reviewed rows of a sample: stratum codes, N_h, predicted/undecided/true sets."""
    needed = ("stratum", "stratum_population", "labels", "undecided_labels", "accepted", truth_col)
    for col in needed:
        if col not in sample.column_names:
            raise ValueError(f"sample table has no column {col!r}")
    truth = _sets(sample.column(truth_col))
    rows = [i for i, t in enumerate(truth) if t is not None]
    enc = sample.column("stratum").combine_chunks().dictionary_encode()
    strata = [str(s) for s in enc.dictionary.to_pylist()]
    code_all = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pops: dict[str, int] = {}
    pop_col = sample.column("stratum_population").to_pylist()
    for c, N in zip(code_all.tolist(), pop_col, strict=True):
        if pops.setdefault(strata[c], int(N)) != int(N):
            raise ValueError(f"stratum {strata[c]!r} has inconsistent stratum_population values")
    acc = pc.fill_null(sample.column("accepted").cast(pa.bool_()), False).to_pylist()
    pred, und = _sets(sample.column("labels")), _sets(sample.column("undecided_labels"))
    return {
        "code": code_all[rows],
        "strata": strata,
        "pops": [pops[s] for s in strata],
        "truth": [truth[i] for i in rows],
        "pred": [pred[i] or frozenset() for i in rows],
        "und": [und[i] or frozenset() for i in rows],
        "acc": np.asarray([bool(acc[i]) for i in rows], dtype=bool),
    }


def multilabel_estimates(
    sample: pa.Table,
    classes: Sequence[str],
    confidence_level: float = 0.95,
    populations: dict[str, int] | None = None,
    truth_col: str = "true_labels",
) -> dict[str, Any]:
    """Exact-set accuracy (all rows, accepted rows), micro precision and recall of accepted
    rows' positives, per-class precision and recall among accepted rows, and per class how
    often a reviewer made an undecided class positive — each an :class:`Estimate`.

    ``sample``: the review sample (``stratum``, ``stratum_population``, ``labels``,
    ``undecided_labels``, ``accepted``) with ``truth_col`` the reviewed set (null: not
    reviewed). ``populations``: all strata of the run, so unsampled ones count as uncovered.
    """
    f = _frame(sample, truth_col)
    strata, pops = f["strata"], f["pops"]
    every = dict(zip(strata, pops, strict=True))
    for k, v in (populations or {}).items():
        every.setdefault(k, int(v))
    acc_strata = {s: N for s, N in every.items() if s.startswith("acc")}
    pred, truth, und, acc = f["pred"], f["truth"], f["und"], f["acc"].astype(np.float64)

    def est(y: list[float] | np.ndarray, z: list[float] | np.ndarray,
            relevant: dict[str, int]) -> Estimate:  # fmt: skip
        return ratio_estimate(f["code"], np.asarray(y, np.float64), np.asarray(z, np.float64),
                              pops, confidence_level, relevant, strata)  # fmt: skip

    exact = np.asarray([p == t for p, t in zip(pred, truth, strict=True)], np.float64)
    tp = np.asarray([len(p & t) for p, t in zip(pred, truth, strict=True)], np.float64)
    out: dict[str, Any] = {
        "exact_all": est(exact, np.ones_like(exact), every),
        "exact_accepted": est(exact * acc, acc, acc_strata),
        "micro_precision": est(tp * acc, np.asarray([len(p) for p in pred]) * acc, acc_strata),
        "micro_recall": est(tp * acc, np.asarray([len(t) for t in truth]) * acc, acc_strata),
        "precision": {},
        "recall": {},
        "undecided_added": {},
    }
    for c in classes:
        has_p = np.asarray([c in p for p in pred], np.float64)
        has_t = np.asarray([c in t for t in truth], np.float64)
        has_u = np.asarray([c in u for u in und], np.float64)
        out["precision"][c] = est(has_p * has_t * acc, has_p * acc, acc_strata)
        out["recall"][c] = est(has_p * has_t * acc, has_t * acc, acc_strata)
        out["undecided_added"][c] = est(has_u * has_t, has_u, every)
    return out
