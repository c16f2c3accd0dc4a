"""Accuracy estimates with confidence intervals from a reviewed stratified sample (no Ray).

Design: strata h with known population N_h, a simple random sample of n_h reviewed items in
each (the bottom-k hash sample is one). Any quantity here is a *domain* proportion: the share
of correct labels among the items of a domain d (all items, accepted items, items predicted
as class c). The point estimate is the Horvitz–Thompson ratio (Hájek) estimator

    p = sum_h (N_h/n_h) x_dh  /  sum_h (N_h/n_h) n_dh

(x_dh correct and n_dh reviewed items of the domain in stratum h), which is the plain
stratified mean sum_h W_h p_h when the domain is a union of whole strata. Its variance is the
Taylor-linearised stratified variance with the finite-population correction (1 - n_h/N_h),
so a stratum reviewed in full contributes no sampling error.

Interval: Korn & Graubard (1998) — Clopper–Pearson evaluated at the *effective sample size*
n* = p(1-p)/v (degrees-of-freedom adjusted: n* x (t_{n-1}/t_{n-H})^2; n* = the domain's
reviewed count when v = 0, e.g. when every review was correct). It is the interval used for
survey proportions by NCHS and R's ``svyciprop(method="beta")``. Unlike Wald it does not
collapse to zero width when accuracy is near 1 and strata show no errors. In simulation
(20k items, 12 strata, accuracies 0.55–0.999, 120–300 reviews, proportional and
error-weighted allocation, 1000 samples each) 95% intervals covered 94–99% for overall,
accepted-label and per-class accuracy, where Wald fell to ~50% on the accepted domain and
the effective-n Wilson interval to ~91% when every stratum was above 0.99.
A stratum with a single review has no within-stratum variance estimate; its squared
residual stands in for it (allocate with ``min_per_stratum >= 2`` to avoid relying on that).

Strata without any reviews are *not covered*: estimates describe the reviewed strata only,
and ``Estimate.uncovered_population`` / ``uncovered_strata`` say how much was left out
(nothing is imputed for them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

METHOD = "korn_graubard_stratified"


@dataclass
class Estimate:
    """A proportion with its two-sided confidence interval and the evidence behind it.

    ``population`` is the (estimated, for domains that split strata) number of items the
    estimate describes; ``point`` is NaN when there were no reviews and ``n_effective`` is inf
    for a full census (``to_json`` gives null for both).
    """

    point: float
    lower: float
    upper: float
    n_reviewed: int
    population: int
    method: str
    confidence_level: float = 0.95
    n_effective: float = 0.0
    uncovered_population: int = 0
    uncovered_strata: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """Plain-JSON form for summary.json (NaN becomes null)."""

        def clean(x: float) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "point": clean(self.point),
            "lower": clean(self.lower),
            "upper": clean(self.upper),
            "n_reviewed": int(self.n_reviewed),
            "population": int(self.population),
            "method": self.method,
            "confidence_level": float(self.confidence_level),
            "n_effective": clean(self.n_effective),
            "uncovered_population": int(self.uncovered_population),
            "uncovered_strata": list(self.uncovered_strata),
        }


def _domain_estimate(
    pop: np.ndarray,
    n: np.ndarray,
    nd: np.ndarray,
    xd: np.ndarray,
    confidence_level: float,
) -> tuple[float, float, float, float, float]:
    """(point, lower, upper, estimated domain size, n*) from per-stratum counts.

    pop = N_h, n = reviewed in stratum, nd = reviewed in domain, xd = correct in domain;
    only strata with n > 0 may be passed.
    """
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    pop, n, nd, xd = (np.asarray(a, dtype=np.float64) for a in (pop, n, nd, xd))
    n_dom = float(nd.sum())
    if n_dom == 0:
        return math.nan, 0.0, 1.0, 0.0, 0.0
    w = pop / n
    size_d = float(np.sum(w * nd))
    p = float(np.sum(w * xd) / size_d)
    # Linearised residuals e = d (y - p): per-stratum sum and sum of squares from counts.
    s1 = xd - nd * p
    s2 = xd * (1 - p) ** 2 + (nd - xd) * p**2
    var_h = np.where(n > 1, (s2 - s1**2 / n) / np.maximum(n - 1, 1), s2)
    fpc = np.clip(1.0 - n / pop, 0.0, 1.0)
    v = float(np.sum(pop**2 * fpc * np.maximum(var_h, 0.0) / n)) / size_d**2
    census = bool(np.all(fpc[nd > 0] == 0))
    if census:
        return p, p, p, size_d, math.inf
    alpha = 1.0 - confidence_level
    n_eff = p * (1 - p) / v if (v > 0 and 0 < p < 1) else n_dom
    n_total, n_strata = float(n.sum()), int(n.size)
    if n_total - 1 >= 1:
        df = max(n_total - n_strata, 1.0)
        ratio = special.stdtrit(n_total - 1, 1 - alpha / 2) / special.stdtrit(df, 1 - alpha / 2)
        n_eff *= float(ratio) ** 2
    k = n_eff * p
    m = n_eff * (1 - p)
    # betaincinv(a, b, q) is the Beta(a, b) quantile (scipy.stats.beta.ppf, without overhead).
    lower = float(special.betaincinv(k, m + 1, alpha / 2)) if k > 1e-9 else 0.0
    upper = float(special.betaincinv(k + 1, m, 1 - alpha / 2)) if m > 1e-9 else 1.0
    lower = 0.0 if math.isnan(lower) else lower
    upper = 1.0 if math.isnan(upper) else upper
    lower, upper = max(0.0, min(lower, p)), min(1.0, max(upper, p))
    return p, lower, upper, size_d, n_eff


def stratified_proportion(
    populations: dict[str, int],
    reviewed: dict[str, tuple[int, int]],
    confidence_level: float = 0.95,
) -> Estimate:
    """Stratified accuracy sum_h W_h p_h over the reviewed strata, Korn–Graubard interval.

    ``reviewed`` maps stratum -> (n_reviewed, n_correct). Strata with no reviews are reported
    as not covered (W_h is taken over covered strata; nothing is imputed for the rest).
    """
    unknown = sorted(set(reviewed) - set(populations))
    if unknown:
        raise ValueError(f"reviewed stratum {unknown[0]!r} has no population ({len(unknown)} such)")
    keys = sorted(k for k in populations if reviewed.get(k, (0, 0))[0] > 0)
    for k in keys:
        nr, nc = reviewed[k]
        if not 0 <= nc <= nr <= populations[k]:
            raise ValueError(
                f"stratum {k!r}: need 0 <= n_correct <= n_reviewed <= population, "
                f"got ({nr}, {nc}) with population {populations[k]}"
            )
    uncovered = sorted(k for k in populations if k not in keys and populations[k] > 0)
    pop = np.array([populations[k] for k in keys], dtype=np.float64)
    n = np.array([reviewed[k][0] for k in keys], dtype=np.float64)
    x = np.array([reviewed[k][1] for k in keys], dtype=np.float64)
    p, lo, hi, _, n_eff = _domain_estimate(pop, n, n, x, confidence_level)
    return Estimate(
        point=p,
        lower=lo,
        upper=hi,
        n_reviewed=int(n.sum()),
        population=int(pop.sum()),
        method=METHOD,
        confidence_level=confidence_level,
        n_effective=n_eff,
        uncovered_population=int(sum(populations[k] for k in uncovered)),
        uncovered_strata=uncovered,
    )


def _label_of(stratum: str) -> str:
    """Predicted label part of a stratum key ``"<label>|<lo>-<hi>"``."""
    return stratum.rsplit("|", 1)[0]


def _reviewed_frame(
    sample: pa.Table, true_label_col: str, label_col: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, int]]:
    """Reviewed rows as arrays: stratum code, correct, reviewed mask, row labels; strata + N_h."""
    for col in ("stratum", "stratum_population", label_col, true_label_col):
        if col not in sample.column_names:
            raise ValueError(f"sample table has no column {col!r}")
    enc = sample.column("stratum").combine_chunks().dictionary_encode()
    strata = [str(s) for s in enc.dictionary.to_pylist()]
    code = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pops_col = sample.column("stratum_population").to_numpy(zero_copy_only=False)
    sample_pops: dict[str, int] = {}
    for c, N in zip(code.tolist(), pops_col.tolist(), strict=True):
        if sample_pops.setdefault(strata[c], int(N)) != int(N):
            raise ValueError(f"stratum {strata[c]!r} has inconsistent stratum_population values")
    truth = sample.column(true_label_col)
    reviewed = ~truth.is_null().to_numpy(zero_copy_only=False)
    label = sample.column(label_col).cast(pa.string())
    correct = pc.fill_null(pc.equal(label, truth.cast(pa.string())), False)
    labels = np.asarray(label.to_pylist(), dtype=object)
    return (
        code,
        correct.to_numpy(zero_copy_only=False).astype(bool),
        reviewed,
        labels,
        strata,
        sample_pops,
    )


def _estimate_domain(
    code: np.ndarray,
    correct: np.ndarray,
    reviewed: np.ndarray,
    domain: np.ndarray,
    strata: list[str],
    pops: dict[str, int],
    relevant: dict[str, int],
    confidence_level: float,
) -> Estimate:
    """Domain estimate over sampled strata; ``relevant`` strata (-> N_h) without reviews are
    reported as uncovered."""
    H = len(strata)
    n = np.bincount(code[reviewed], minlength=H).astype(np.float64)
    nd = np.bincount(code[reviewed & domain], minlength=H).astype(np.float64)
    xd = np.bincount(code[reviewed & domain & correct], minlength=H).astype(np.float64)
    pop = np.array([pops[s] for s in strata], dtype=np.float64)
    use = n > 0
    if np.any(n > pop):
        bad = strata[int(np.flatnonzero(n > pop)[0])]
        raise ValueError(f"stratum {bad!r} has more reviewed rows than its population")
    p, lo, hi, size_d, n_eff = _domain_estimate(
        pop[use], n[use], nd[use], xd[use], confidence_level
    )
    covered = {s for s, u in zip(strata, use.tolist(), strict=True) if u}
    uncovered = sorted(s for s, N in relevant.items() if s not in covered and N > 0)
    return Estimate(
        point=p,
        lower=lo,
        upper=hi,
        n_reviewed=int(nd.sum()),
        population=round(size_d),
        method=METHOD,
        confidence_level=confidence_level,
        n_effective=n_eff,
        uncovered_population=int(sum(relevant[s] for s in uncovered)),
        uncovered_strata=uncovered,
    )


def estimate_from_reviews(
    sample: pa.Table,
    true_label_col: str = "true_label",
    confidence_level: float = 0.95,
    label_col: str = "label",
    accepted_col: str = "accepted",
    populations: dict[str, int] | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Overall accuracy, accepted-label precision and per-class precision, each an Estimate.

    ``sample`` is the review sample (``stratum``, ``stratum_population``, ``label``,
    ``accepted``, ``true_label``; rows with a null true label were not reviewed). Weights are
    recomputed as N_h / (reviewed in h) rather than read from ``weight``, so a partly
    reviewed sample stays unbiased if the unreviewed rows are missing at random. Per-class
    precision is P(true = c | predicted c) (domain = strata of label c); accepted precision
    restricts to ``accepted`` rows (a domain that may split strata; its size is estimated).
    ``populations`` (all strata of the run, from the sampling state) lets strata that were
    never sampled be reported as uncovered. Returns ``{"overall", "accepted" (only if the
    column exists), "per_class": {label: Estimate}}``.
    """
    code, correct, reviewed, labels, strata, pops = _reviewed_frame(
        sample, true_label_col, label_col
    )
    all_pops = dict(pops)
    if populations:
        for k, v in populations.items():
            all_pops.setdefault(k, int(v))
    ones = np.ones(code.size, dtype=bool)
    out: dict[str, Any] = {
        "overall": _estimate_domain(
            code, correct, reviewed, ones, strata, pops, all_pops, confidence_level
        )
    }
    if accepted_col in sample.column_names:
        acc = pc.fill_null(sample.column(accepted_col).cast(pa.bool_()), False)
        acc_mask = acc.to_numpy(zero_copy_only=False).astype(bool)
        out["accepted"] = _estimate_domain(
            code, correct, reviewed, acc_mask, strata, pops, all_pops, confidence_level
        )
    names = sorted({str(x) for x in labels.tolist()} | set(classes or []))
    per_class: dict[str, Estimate] = {}
    for name in names:
        dom = labels == name
        relevant = {s: N for s, N in all_pops.items() if _label_of(s) == name}
        own = [s for s in strata if _label_of(s) == name]
        # Restrict to this class's strata so its effective-n/df use only its own evidence.
        keep = np.isin(code, [strata.index(s) for s in own]) if own else np.zeros_like(dom)
        per_class[name] = _estimate_domain(
            code[keep],
            correct[keep],
            reviewed[keep],
            dom[keep],
            strata,
            pops,
            relevant,
            confidence_level,
        )
    out["per_class"] = per_class
    return out


def calibration_flags(
    sample: pa.Table,
    true_label_col: str = "true_label",
    confidence_level: float = 0.95,
    label_col: str = "label",
    conf_col: str = "confidence",
) -> list[dict]:
    """Strata whose reviewed accuracy's exact (Clopper–Pearson) CI excludes their mean
    predicted confidence — where the calibrated confidence visibly lies."""
    code, correct, reviewed, _, strata, pops = _reviewed_frame(sample, true_label_col, label_col)
    conf = sample.column(conf_col).to_numpy(zero_copy_only=False).astype(np.float64)
    H = len(strata)
    n = np.bincount(code[reviewed], minlength=H).astype(np.float64)
    x = np.bincount(code[reviewed & correct], minlength=H).astype(np.float64)
    csum = np.bincount(code[reviewed], weights=conf[reviewed], minlength=H)
    alpha = 1.0 - confidence_level
    flags = []
    for h in np.argsort(strata):
        if n[h] == 0:
            continue
        lo = float(special.betaincinv(x[h], n[h] - x[h] + 1, alpha / 2)) if x[h] > 0 else 0.0
        hi = float(special.betaincinv(x[h] + 1, n[h] - x[h], 1 - alpha / 2)) if x[h] < n[h] else 1.0
        mean_conf = float(csum[h] / n[h])
        if lo <= mean_conf <= hi:
            continue
        flags.append(
            {
                "stratum": strata[h],
                "stratum_population": pops[strata[h]],
                "n_reviewed": int(n[h]),
                "accuracy": float(x[h] / n[h]),
                "lower": lo,
                "upper": hi,
                "mean_confidence": mean_conf,
                "direction": "overconfident" if mean_conf > hi else "underconfident",
            }
        )
    return flags
