"""Drift watch: this run's class mix, confidence and error share vs. a baseline run.

Why: a model that was good on last week's drops can quietly go wrong when the data
changes (a new camera, a new product line). The label pass already returns per-class
counts and confidence histograms, so the check reads no labels: it compares this run's
summary with the baseline's summary.json using the population stability index
(PSI = sum (p - q) ln(p / q)) and reports a verdict. Drift never fails a run.

Baseline ("previous committed run of the same model"): among the drops under
``output.root/runs/``, the committed run each drop's ``LATEST`` points at whose model is
this run's model, newest ``created_at`` first, this run excluded. A relabel of the same
drop with the same model therefore compares with that drop's previous run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from raylabel.config import DriftConfig
from raylabel.errors import first_line
from raylabel.io import layout, listing, storage
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions

VERDICTS = ("ok", "warn", "alert", "no_baseline", "unavailable", "disabled")
# floor for empty bins: PSI is infinite when a bin is empty on one side only
PSI_FLOOR = 1e-4


def psi(current: Sequence[float], baseline: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    p = np.asarray(current, dtype=np.float64)
    q = np.asarray(baseline, dtype=np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("psi needs two non-empty count vectors of the same length")
    p = np.maximum(p / p.sum(), floor)
    q = np.maximum(q / q.sum(), floor)
    return float(np.sum((p - q) * np.log(p / q)))


def rebin(hist: Sequence[int], bins: int) -> list[int]:
    """Fine equal-width histogram on [0, 1] -> ``bins`` equal-width bins (summed)."""
    h = np.asarray(hist, dtype=np.int64)
    target = (np.arange(len(h)) * bins) // max(len(h), 1)
    return np.bincount(target, weights=h, minlength=bins).astype(np.int64).tolist()


def class_counts(summary: dict[str, Any], classes: Sequence[str]) -> list[int]:
    """Labeled items per class in a given class order, so two runs' class mixes compare bin for bin
    (a class one run lacks counts 0)."""
    per_class = summary.get("per_class") or {}
    return [int((per_class.get(c) or {}).get("labeled", 0) or 0) for c in classes]


def confidence_hist(summary: dict[str, Any]) -> list[int]:
    """All classes' confidence histograms summed (the label pass's 100 bins)."""
    per_class = (summary.get("confidence_histogram") or {}).get("per_class") or {}
    total: np.ndarray | None = None
    for h in per_class.values():
        arr = np.asarray(h, dtype=np.int64)
        total = arr if total is None else total + arr
    return [] if total is None else total.tolist()


def error_share(summary: dict[str, Any]) -> float:
    """Errors as a share of input items (0 for an empty run); the drift check flags a rise over the
    baseline's: inputs the pipeline can no longer read."""
    c = summary.get("counts") or {}
    n = int(c.get("input", 0) or 0)
    return (int(c.get("errors", 0) or 0) / n) if n else 0.0


def _level(value: float, warn: float, alert: float) -> str:
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


def _ks(a: Sequence[int], b: Sequence[int]) -> float:
    """Two-sample KS statistic from two histograms on the same bins (max CDF gap)."""
    ca = np.cumsum(a) / max(sum(a), 1)
    cb = np.cumsum(b) / max(sum(b), 1)
    return float(np.max(np.abs(ca - cb))) if len(ca) else 0.0


def _chi2_p(cur: Sequence[int], base: Sequence[int]) -> float | None:
    """p-value of a chi-square test that both runs share one class mix (informational:
    with large drops any tiny change is 'significant', so the verdict uses PSI)."""
    from scipy.stats import chi2_contingency

    cols = [i for i in range(len(cur)) if cur[i] + base[i] > 0]
    if len(cols) < 2:
        return None
    table = np.array([[cur[i] for i in cols], [base[i] for i in cols]])
    return float(chi2_contingency(table)[1])


def compare(current: dict[str, Any], baseline: dict[str, Any], dcfg: DriftConfig) -> dict[str, Any]:
    """Drift numbers and the verdict of ``current`` against ``baseline`` (two summaries)."""
    classes = list(current.get("classes") or [])
    extra = [c for c in (baseline.get("classes") or []) if c not in classes]
    classes += extra
    cur_c, base_c = class_counts(current, classes), class_counts(baseline, classes)
    cur_h = rebin(confidence_hist(current), dcfg.confidence_bins)
    base_h = rebin(confidence_hist(baseline), dcfg.confidence_bins)
    out: dict[str, Any] = {"classes": classes, "confidence_bins": dcfg.confidence_bins}
    checks: list[tuple[str, str, str]] = []
    if sum(cur_c) and sum(base_c):
        v = psi(cur_c, base_c)
        out["class_mix"] = {
            "psi": v,
            "chi2_p": _chi2_p(cur_c, base_c),
            "current": cur_c,
            "baseline": base_c,
        }
        checks.append(
            ("class mix", _level(v, dcfg.psi_warn, dcfg.psi_alert), f"class-mix PSI {v:.3f}")
        )
    if sum(cur_h) and sum(base_h):
        v = psi(cur_h, base_h)
        out["confidence"] = {
            "psi": v,
            "ks": _ks(confidence_hist(current), confidence_hist(baseline)),
            "current": cur_h,
            "baseline": base_h,
        }
        checks.append(
            ("confidence", _level(v, dcfg.psi_warn, dcfg.psi_alert), f"confidence PSI {v:.3f}")
        )
    cur_e, base_e = error_share(current), error_share(baseline)
    rise = cur_e - base_e
    out["error_share"] = {"current": cur_e, "baseline": base_e, "increase": rise}
    checks.append(
        (
            "error share",
            _level(rise, dcfg.error_share_warn, dcfg.error_share_alert),
            f"error share {base_e:.1%} -> {cur_e:.1%}",
        )
    )
    order = {"ok": 0, "warn": 1, "alert": 2}
    worst = max((c[1] for c in checks), key=order.__getitem__, default="ok")
    out["checks"] = {name: level for name, level, _ in checks}
    out["verdict"] = worst
    out["reasons"] = [msg for _, level, msg in checks if level != "ok"]
    return out


def find_baseline(
    root: str, model_version: str, exclude: RunLayout, opts: StorageOptions
) -> tuple[RunLayout, dict[str, Any]] | None:
    """The newest committed run (one per drop: its LATEST) labeled by ``model_version``."""
    runs_root = storage.join(root, "runs")
    if not storage.exists(runs_root, opts):
        return None
    best: tuple[str, str, RunLayout, dict[str, Any]] | None = None
    for drop in listing.list_dirs(runs_root, opts):
        run_id = layout.latest_run(root, drop, opts)
        if not run_id or (drop, run_id) == (exclude.drop, exclude.run_id):
            continue
        run = RunLayout(root, drop, run_id)
        try:
            done = storage.read_json(run.path(layout.SUCCESS), opts)
            if done.get("model_version") != model_version:
                continue
            summary = storage.read_json(run.path("summary.json"), opts)
        except (storage.StorageError, ValueError):
            continue
        key = (str(summary.get("created_at") or ""), run_id)
        if best is None or key > best[:2]:
            best = (key[0], key[1], run, summary)
    return (best[2], best[3]) if best else None


def drift_block(
    dcfg: DriftConfig, run: RunLayout, summary: dict[str, Any], opts: StorageOptions
) -> dict[str, Any]:
    """The ``drift`` block of summary.json; any failure is reported, never raised."""
    if not dcfg.enabled:
        return {"verdict": "disabled"}
    try:
        found = find_baseline(run.root, str(summary.get("model_version")), run, opts)
        if found is None:
            return {
                "verdict": "no_baseline",
                "reasons": ["no earlier committed run of this model under output.root/runs/"],
            }
        base_run, base = found
        out = compare(summary, base, dcfg)
        out["baseline"] = {
            "drop": base_run.drop,
            "run_id": base_run.run_id,
            "created_at": base.get("created_at"),
            "labeled": (base.get("counts") or {}).get("labeled"),
        }
        out["thresholds"] = {
            "psi_warn": dcfg.psi_warn,
            "psi_alert": dcfg.psi_alert,
            "error_share_warn": dcfg.error_share_warn,
            "error_share_alert": dcfg.error_share_alert,
        }
        return out
    except Exception as exc:  # drift is a report, never a reason to lose a run
        msg = first_line(exc)
        return {"verdict": "unavailable", "reasons": [f"{type(exc).__name__}: {msg}"[:300]]}


def verdict_line(block: dict[str, Any] | None) -> str:
    """One line for CLI / nightly output, e.g. 'drift alert (class-mix PSI 0.412)'."""
    if not block:
        return "drift: -"
    v = block.get("verdict", "-")
    reasons = [r for r in block.get("reasons") or [] if isinstance(r, str)]
    if v in ("warn", "alert") and reasons:
        return f"drift {v} ({'; '.join(reasons)})"
    return f"drift {v}"
