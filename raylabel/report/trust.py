"""The trust section of the run report: how a label gets auto-accepted, each class's
threshold and the evidence behind it, and how well the model is calibrated."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from raylabel.report.kit import (
    DASH,
    as_dict,
    as_list,
    badge,
    class_names,
    e,
    ff,
    fint,
    fpct,
    fthr,
    kv,
    num,
    section,
    table,
    to_int,
)
from raylabel.report.plots import C_ACCEPTED, C_AFTER, C_BEFORE, C_MUTED, C_TARGET, figure, plot

#: A class accepting less than this share of its labels gets its threshold explained.
LOW_COVERAGE = 0.2

_SOURCE_BADGE = {
    "class": ("own evidence", "ok"),
    "global": ("global (little evidence)", "warn"),
    "unreachable": ("unreachable: none accepted", "bad"),
}
_BOUND_NAME = {
    "clopper_pearson": "Clopper-Pearson (exact) lower bound",
    "wilson": "Wilson lower bound",
    "point": "point estimate (no lower bound)",
}
_THRESHOLDS_FROM = {
    "card": "the model card",
    "card+reviews": "the model card's calibration items plus reviewed items, re-derived "
    "for this run",
}
#: Most runs named in the calibration line; the rest are counted.
_MAX_RUNS_NAMED = 5


# --------------------------------------------------------------------------- calibration


def _calibrated_on(cal: Mapping[str, Any]) -> str:
    """'cross-fitted (5-fold ...) on 1,200 calibration items, 40 of them reviewed', or ''."""
    method, folds = cal.get("method"), to_int(cal.get("folds"))
    if method == "crossfit":
        how = f"cross-fitted ({folds}-fold out-of-fold predictions)" if folds else "cross-fitted"
    elif method == "holdout":
        how = "a held-out validation split"
    else:
        how = str(method) if method not in (None, "") else ""
    items, reviewed = to_int(cal.get("items")), to_int(cal.get("reviewed_items"))
    if items is not None:
        how = f"{how} on {items:,} calibration items" if how else f"{items:,} calibration items"
        if reviewed:
            how += f", {reviewed:,} of them reviewed drop items"
    return how


def _reviewed_tonight(qc: Mapping[str, Any]) -> str:
    """'re-derived for this run with 300 reviewed items from 2 runs (r1: 100, ...)', or ''."""
    n = to_int(qc.get("reviewed_items"))
    if not n or n < 0:
        return ""
    runs = as_dict(qc.get("reviewed_runs"))
    text = f"re-derived for this run with {n:,} reviewed items"
    if runs:
        named = [f"{r}: {fint(c)}" for r, c in list(runs.items())[:_MAX_RUNS_NAMED]]
        if len(runs) > _MAX_RUNS_NAMED:
            named.append(f"{len(runs) - _MAX_RUNS_NAMED} more")
        text += f" from {len(runs)} run{'s' if len(runs) != 1 else ''} ({', '.join(named)})"
    return text


def calibration_line(qc: Mapping[str, Any]) -> str:
    """Thresholds are only as good as their calibration items, so the page says which (or '')."""
    bits = [_calibrated_on(as_dict(qc.get("calibration"))), _reviewed_tonight(qc)]
    bits = [b for b in bits if b]
    if not bits:
        return ""
    return "; ".join(bits) + "."


def _rule_part(qc: Mapping[str, Any]) -> list[str]:
    """The acceptance rule, its settings and how the thresholds were calibrated."""
    parts = ["<h3>Acceptance rule</h3>"]
    if qc.get("rule"):
        parts.append(
            f"<p>A label is auto-accepted when its calibrated confidence reaches "
            f"its class threshold: {e(qc.get('rule'))}.</p>"
        )
    line = calibration_line(qc)
    if line:
        parts.append(f"<p><b>How these thresholds were calibrated:</b> {e(line)}</p>")
    bound, source = qc.get("bound"), qc.get("threshold_source")
    cal = as_dict(qc.get("calibration"))
    parts.append(
        kv(
            [
                ("Target precision", ff(qc.get("target_precision"), 3)),
                ("Confidence level", fpct(qc.get("confidence_level"), 0)),
                ("Temperature (calibration)", ff(qc.get("temperature"), 3)),
                ("Global threshold", fthr(qc.get("global_threshold"))),
                ("Precision bound", _BOUND_NAME.get(str(bound), bound) if bound else None),
                ("Thresholds from", _THRESHOLDS_FROM.get(str(source), source) if source else None),
                ("Calibration set", cal.get("description") or None),
            ]
        )
    )
    return parts


# --------------------------------------------------------------------------- per class


def _low_coverage(d: Mapping[str, Any]) -> bool:
    """No coverage at all (unknown, nothing labeled) or less than :data:`LOW_COVERAGE`."""
    cov = num(d.get("coverage"))
    return cov is None or cov < LOW_COVERAGE


def explanations(s: Mapping[str, Any]) -> dict[str, str]:
    """A class that accepts little needs its reason next to it: class -> explanation line."""
    pc = as_dict(s.get("per_class"))
    names = sorted(class_names(s), key=len, reverse=True)  # "a: b" before "a"
    out: dict[str, str] = {}
    for line in as_list(as_dict(s.get("qc")).get("explanation_lines")):
        if not isinstance(line, str):
            continue
        c = next((c for c in names if line.startswith(f"{c}: ")), None)
        if c is not None and c not in out and _low_coverage(as_dict(pc.get(c))):
            out[c] = line
    return out


def _class_part(s: Mapping[str, Any]) -> list[str]:
    """Per-class thresholds and coverage, each weak class with the reason under it."""
    pc = as_dict(s.get("per_class"))
    if not pc:
        return []
    val_acc = as_dict(as_dict(s.get("validation")).get("per_class_accuracy"))
    head = ["class", "labeled", "accepted", "coverage", "threshold", "threshold from"]
    if val_acc:
        head.append("validation recall")
    why = explanations(s)
    rows, notes = [], {}
    for c in class_names(s):
        d = as_dict(pc.get(c))
        src = d.get("threshold_source")
        text, kind = _SOURCE_BADGE.get(str(src), (str(src) if src else DASH, "neutral"))
        row: list[Any] = [
            c,
            fint(d.get("labeled")),
            fint(d.get("accepted")),
            fpct(d.get("coverage")),
            fthr(d.get("threshold")),
            badge(text, kind),
        ]
        if val_acc:
            row.append(fpct(val_acc.get(c)))
        if c in why:
            notes[len(rows)] = why[c]
        rows.append(row)
    return [
        "<h3>Per-class thresholds and coverage</h3>",
        table(head, rows, num={1, 2, 3, 4, 6}, notes=notes),
    ]


# --------------------------------------------------------------------------- validation


def _validation_part(s: Mapping[str, Any]) -> list[str]:
    """Validation figures and the two calibration plots."""
    v = as_dict(s.get("validation"))
    parts = ["<h3>Calibration on the validation split</h3>"]
    parts.append(
        kv(
            [
                ("Validation items", fint(v.get("n"))),
                (
                    "Exact-set accuracy (0.5)"
                    if s.get("task") == "multilabel"
                    else "Accuracy (top-1)",
                    fpct(v.get("accuracy")),
                ),
                ("Loss", ff(v.get("loss"))),
                ("ECE before calibration", ff(v.get("ece_before"))),
                ("ECE after calibration", ff(v.get("ece_after"))),
            ]
        )
    )
    plots = [
        plot("reliability diagram", _plot_reliability, s),
        plot("coverage vs precision", _plot_coverage_precision, s),
    ]
    plots = [p for p in plots if p]
    if plots:
        parts.append(f'<div class="grid2">{"".join(plots)}</div>')
    return parts


def sec_trust(s: Mapping[str, Any]) -> str:
    """Whether to trust auto-accepted labels depends on the rule, thresholds and calibration."""
    qc = as_dict(s.get("qc"))
    pc = as_dict(s.get("per_class"))
    parts = _rule_part(qc) if qc else []
    parts += _class_part(s)
    if as_dict(s.get("validation")):
        parts += _validation_part(s)
    elif qc or pc:
        parts.append('<p class="note">No validation data in this summary.</p>')
    if not parts:
        return ""
    return section("trust", "Trust: calibration and thresholds", "".join(parts))


# --------------------------------------------------------------------------- plots


def _reliability(d: Any) -> tuple[list[float], list[float], list[float]]:
    """(confidence, accuracy, count) of the non-empty, finite bins."""
    d = as_dict(d)
    conf, acc, cnt = (
        as_list(d.get("confidence")),
        as_list(d.get("accuracy")),
        as_list(d.get("count")),
    )
    out: tuple[list[float], list[float], list[float]] = ([], [], [])
    for i in range(min(len(conf), len(acc))):
        c, a = num(conf[i]), num(acc[i])
        n = num(cnt[i]) if i < len(cnt) else None
        if c is None or a is None:
            continue
        out[0].append(c)
        out[1].append(a)
        out[2].append(n if n is not None else 1.0)
    return out


def _plot_reliability(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Reliability diagram before/after temperature scaling, marker area ~ bin count."""
    v = as_dict(s.get("validation"))
    series = [
        (
            "before calibration",
            _reliability(v.get("reliability_before")),
            v.get("ece_before"),
            C_BEFORE,
            "s",
        ),
        (
            "after calibration",
            _reliability(v.get("reliability_after")),
            v.get("ece_after"),
            C_AFTER,
            "o",
        ),
    ]
    series = [x for x in series if x[1][0]]
    if not series:
        return None
    biggest = max(max(x[1][2]) for x in series) or 1.0
    fig, axes = figure(5.4, 4.4)
    ax = axes[0][0]
    ax.plot([0, 1], [0, 1], color=C_MUTED, ls="--", lw=1, label="perfect calibration")
    temp = num(as_dict(s.get("qc")).get("temperature"))
    for name, (conf, acc, cnt), ece, color, marker in series:
        err = num(ece)
        label = name
        if name.startswith("after") and temp is not None:
            label += f", T={temp:.2f}"
        label += f" (ECE {err:.3f})" if err is not None else " (ECE —)"
        sizes = [12 + 220 * n / biggest for n in cnt]
        ax.plot(conf, acc, color=color, lw=1, alpha=0.7)
        ax.scatter(
            conf,
            acc,
            s=sizes,
            color=color,
            alpha=0.75,
            marker=marker,
            edgecolors="white",
            linewidths=0.5,
            label=label,
            zorder=3,
        )
    lo = min(min(x[1][0] + x[1][1]) for x in series)
    lo = max(0.0, math.floor(lo * 10) / 10 - 0.05)
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("mean confidence in bin")
    ax.set_ylabel("observed accuracy in bin")
    n = to_int(v.get("n"))
    ax.set_title("Reliability on validation" + (f" (n={n:,})" if n else ""))
    leg = ax.legend(loc="lower right", markerscale=0.6)
    for h in leg.legend_handles:
        if hasattr(h, "set_sizes"):
            h.set_sizes([30])
    return fig, (
        "Points below the diagonal are over-confident bins. Marker area is proportional to the "
        "number of validation items in the bin; ECE = expected calibration error (lower is "
        "better)."
    )


def _plot_coverage_precision(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Validation coverage vs precision of ``conf >= t``, target line, global threshold."""
    import numpy as np

    cp = as_dict(as_dict(s.get("validation")).get("coverage_precision"))
    thr, cov, prec = (as_list(cp.get(k)) for k in ("threshold", "coverage", "precision"))
    pts = [
        (t, c, p)
        for t, c, p in zip(map(num, thr), map(num, cov), map(num, prec), strict=False)
        if t is not None and c is not None and p is not None and c > 0
    ]
    if len(pts) < 2:
        return None
    pts.sort()
    t_arr, c_arr, p_arr = (np.array(a) for a in zip(*pts, strict=True))
    qc = as_dict(s.get("qc"))
    target, g = num(qc.get("target_precision")), num(qc.get("global_threshold"))
    fig, axes = figure(5.4, 4.4)
    ax = axes[0][0]
    ax.plot(c_arr, p_arr, color=C_ACCEPTED, lw=1.8, label="precision at coverage")
    if target is not None:
        ax.axhline(target, color=C_TARGET, ls="--", lw=1.1, label=f"target precision {target:g}")
    caption = (
        "Each point is one confidence cut t: coverage = share of validation items with "
        "confidence ≥ t, precision = their accuracy (all classes pooled)."
    )
    if g is not None and g <= 1.0 and t_arr[0] <= g <= t_arr[-1]:
        gc, gp = float(np.interp(g, t_arr, c_arr)), float(np.interp(g, t_arr, p_arr))
        ax.plot(
            [gc], [gp], "D", color=C_TARGET, ms=7, zorder=4, label=f"global threshold t={g:.3f}"
        )
        left = gc > 0.5
        ax.annotate(
            f"coverage {gc:.0%}\nprecision {gp:.3f}",
            (gc, gp),
            xytext=(-10 if left else 10, -12),
            textcoords="offset points",
            ha="right" if left else "left",
            va="top",
            fontsize=8,
        )
        caption += (
            " The threshold is where the one-sided lower confidence bound of precision reaches "
            "the target, so the marked point sits above the target line by design."
        )
    elif g is not None and g > 1.0:
        ax.text(
            0.03,
            0.05,
            "global threshold: unreachable (nothing accepted)",
            transform=ax.transAxes,
            fontsize=8,
            color=C_TARGET,
        )
    lows = [float(p_arr.min())] + ([target] if target is not None else [])
    ax.set_ylim(max(0.0, min(lows) - 0.03), 1.005)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of validation items accepted)")
    ax.set_ylabel("precision (accuracy of accepted items)")
    ax.set_title("Coverage vs precision on validation")
    ax.legend(loc="lower left")
    return fig, caption
