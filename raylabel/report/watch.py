"""Report sections for the drift watch and the active-learning review queue.

Kept apart from the run page so those two features own their rendering; built from the
same kit (guarded sections, inline PNG plots), and every field is optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report.kit import (
    as_dict,
    as_list,
    badge,
    e,
    ff,
    fint,
    fpct,
    kv,
    num,
    section,
    table,
)
from raylabel.report.plots import C_AFTER, C_BEFORE, C_MUTED, figure, plot

_VERDICT_KIND = {
    "ok": "ok",
    "warn": "warn",
    "alert": "bad",
    "no_baseline": "neutral",
    "unavailable": "neutral",
    "disabled": "neutral",
}


def _shares(counts: list[Any]) -> list[float]:
    vals = [num(c) or 0.0 for c in counts]
    total = sum(vals)
    return [v / total if total else 0.0 for v in vals]


def _plot_drift(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Class mix (this run vs baseline) and confidence histograms, as shares."""
    import numpy as np

    d = as_dict(s.get("drift"))
    mix, conf = as_dict(d.get("class_mix")), as_dict(d.get("confidence"))
    if not mix and not conf:
        return None
    fig, axes = figure(11.0, 3.4, 1, 2)
    ax = axes[0][0]
    classes = [str(c) for c in as_list(d.get("classes"))]
    if mix and classes:
        x = np.arange(len(classes))
        ax.bar(
            x - 0.2, _shares(as_list(mix.get("baseline"))), 0.4, color=C_BEFORE, label="baseline"
        )
        ax.bar(x + 0.2, _shares(as_list(mix.get("current"))), 0.4, color=C_AFTER, label="this run")
        rotate = len(classes) > 6
        ax.set_xticks(x, classes, rotation=30 if rotate else 0, ha="right" if rotate else "center")
        ax.set_ylabel("share of labeled items")
        ax.set_title(f"Predicted class mix (PSI {ff(mix.get('psi'))})")
        ax.legend(loc="upper right")
        ax.grid(axis="x", visible=False)
    ax = axes[0][1]
    if conf:
        cur, base = as_list(conf.get("current")), as_list(conf.get("baseline"))
        bins = len(cur)
        centers = (np.arange(bins) + 0.5) / max(bins, 1)
        width = 1.0 / max(bins, 1)
        ax.step(centers, _shares(base), where="mid", color=C_BEFORE, label="baseline")
        ax.bar(centers, _shares(cur), width * 0.9, color=C_AFTER, alpha=0.6, label="this run")
        ax.set_xlim(0, 1)
        ax.set_xlabel("calibrated confidence")
        ax.set_ylabel("share of labeled items")
        ax.set_title(f"Confidence (PSI {ff(conf.get('psi'))}, KS {ff(conf.get('ks'))})")
        ax.legend(loc="upper left")
    caption = "Shares, so drops of different sizes compare; PSI = Σ (p − q) ln(p / q)."
    return fig, caption


def sec_drift(s: Mapping[str, Any]) -> str:
    """A drop that no longer looks like the last one needs a verdict, numbers and a plot."""
    d = s.get("drift")
    if not isinstance(d, Mapping):
        return ""
    verdict = str(d.get("verdict") or "unavailable")
    base = as_dict(d.get("baseline"))
    mix, conf, err = (
        as_dict(d.get("class_mix")),
        as_dict(d.get("confidence")),
        as_dict(d.get("error_share")),
    )
    thr = as_dict(d.get("thresholds"))
    rows = [
        ("Verdict", badge(verdict, _VERDICT_KIND.get(verdict, "neutral"))),
        (
            "Baseline run",
            f"{base.get('drop')}/{base.get('run_id')} ({fint(base.get('labeled'))} labeled)"
            if base
            else None,
        ),
        ("Class-mix PSI", ff(mix.get("psi")) if mix else None),
        ("Class-mix chi-square p", ff(mix.get("chi2_p"), 4) if mix else None),
        ("Confidence PSI", ff(conf.get("psi")) if conf else None),
        ("Confidence KS", ff(conf.get("ks")) if conf else None),
        (
            "Error share",
            f"{fpct(err.get('baseline'))} → {fpct(err.get('current'))}" if err else None,
        ),
        (
            "Thresholds",
            f"PSI warn {thr.get('psi_warn')} / alert {thr.get('psi_alert')}; error-share "
            f"rise warn {thr.get('error_share_warn')} / alert {thr.get('error_share_alert')}"
            if thr
            else None,
        ),
    ]
    parts = [kv(rows)]
    reasons = [r for r in as_list(d.get("reasons")) if isinstance(r, str)]
    if reasons:
        parts.append(f'<p class="note">{e("; ".join(reasons))}</p>')
    parts.append(plot("drift", _plot_drift, s))
    return section("drift", "Drift watch", "".join(parts))


def _plot_active_curve(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Held-out accuracy after adding N reviewed labels: active queue vs random."""
    al = as_dict(s.get("active_learning"))
    ns = [num(n) for n in as_list(al.get("n"))]
    if not ns or any(n is None for n in ns):
        return None
    fig, axes = figure(6.5, 3.6)
    ax = axes[0][0]
    arms = (
        ("random", C_BEFORE, "random"),
        ("least_confident", C_MUTED, "least-confident"),
        ("active", C_AFTER, "active queue"),
    )
    for key, color, name in arms:
        ys = [num(v) for v in as_list(al.get(key))]
        if len(ys) == len(ns) and all(y is not None for y in ys):
            ax.plot(ns, ys, marker="o", color=color, label=name)
    base = num(al.get("baseline"))
    if base is not None:
        ax.axhline(base, color=C_MUTED, linestyle="--", linewidth=1, label="seed only")
    ax.set_xlabel("labels added (N)")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(ns)
    ax.set_title("Active learning: accuracy vs labels added")
    ax.legend(loc="lower right")
    return fig, str(al.get("note") or "")


def sec_active(s: Mapping[str, Any]) -> str:
    """Reviewers should know how their queue was picked and, if measured, what it buys."""
    q = as_dict(as_dict(s.get("review")).get("uncertain_queue"))
    al = as_dict(s.get("active_learning"))
    if not q and not al:
        return ""
    parts = []
    if q:
        parts.append(
            kv(
                [
                    ("Strategy", q.get("strategy")),
                    ("Candidate pool", fint(q.get("pool")) if "pool" in q else None),
                    ("Pool per class", fint(q.get("pool_per_class")) if q.get("pool") else None),
                    ("Embeddings", q.get("embedding")),
                    (
                        "Near-duplicate distance (cosine)",
                        ff(q.get("dedup_distance"), 4) if "dedup_distance" in q else None,
                    ),
                    ("… as a share of the median distance", q.get("dedup_fraction")),
                ]
            )
        )
        per_class = as_dict(q.get("per_class"))
        if per_class:
            parts.append(
                table(
                    ["predicted class", "queued"],
                    [(k, fint(v)) for k, v in per_class.items()],
                    num={1},
                )
            )
        parts.append(
            '<p class="note">Uncertain items (smallest top-1 − top-2 margin) per predicted '
            "class, spread over the model's feature space (farthest-first), near-duplicates "
            "dropped; exported to Label Studio without the model's guess.</p>"
        )
    if al:
        arms = [
            (k, name)
            for k, name in (
                ("random", "random"),
                ("least_confident", "least-confident"),
                ("active", "active queue"),
            )
            if as_list(al.get(k))
        ]
        rows = []
        for i, n in enumerate(as_list(al.get("n"))):
            cells = [fint(n)]
            for k, _ in arms:
                vals = as_list(al.get(k))
                cells.append(fpct(vals[i]) if i < len(vals) else "—")
            rows.append(cells)
        parts.append("<h3>Measured: accuracy after adding N reviewed labels</h3>")
        head = ["N", *(name for _, name in arms)]
        parts.append(table(head, rows, num=set(range(len(head)))))
        parts.append(plot("active learning", _plot_active_curve, s))
    return section("active", "Active-learning review queue", "".join(parts))
