"""The multilabel section of the run report (task=multilabel): per-class decisions, each
class's two thresholds, its precision-coverage curve, how many classes items carry and which
classes come together.

Reads ``summary["multilabel"]``, which the label stage fills::

    {"classes": [...],                                   # the card's class order
     "counts": LabelSetCounts.to_json(),                 # raylabel.stats.multilabel_counts
     "thresholds": {"positive": {c: t}, "negative": {c: t},
                    "positive_source": {c: "class" | "unreachable"},
                    "negative_source": {c: "class" | "unreachable"}},
     "precision_coverage": {c: {"threshold": [...], "coverage": [...], "precision": [...]}}}

Every key is optional: the section renders what is there and leaves the rest out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from raylabel.report import plots
from raylabel.report.kit import (
    DASH,
    as_dict,
    as_list,
    badge,
    fint,
    fpct,
    fthr,
    kv,
    num,
    ratio,
    section,
    table,
    to_int,
)
from raylabel.report.plots import C_ACCEPTED, C_LABELED, C_MUTED, C_TARGET, cap_note, figure, plot

#: Most classes whose co-occurrence cells get their percentage written in.
MAX_ANNOTATED_CLASSES = 12

_POS_BADGE = {
    "class": ("own evidence", "ok"),
    "unreachable": ("unreachable: never positive", "bad"),
}
_NEG_BADGE = {
    "class": ("own evidence", "ok"),
    "unreachable": ("unreachable: never negative", "bad"),
}


# --------------------------------------------------------------------------- data


def ml_block(s: Mapping[str, Any]) -> Mapping[str, Any]:
    """The summary's multilabel block (empty mapping when absent or malformed)."""
    return as_dict(s.get("multilabel"))


def ml_classes(s: Mapping[str, Any]) -> list[str]:
    """Classes in the block's order, then any only the counts, thresholds or curves name."""
    ml = ml_block(s)
    counts = as_dict(ml.get("counts"))
    thr = as_dict(ml.get("thresholds"))
    out: list[str] = []
    sources = [
        as_list(ml.get("classes")),
        as_list(counts.get("classes")),
        as_list(s.get("classes")),
        list(as_dict(counts.get("per_class"))),
        list(as_dict(thr.get("positive"))),
        list(as_dict(thr.get("negative"))),
        list(as_dict(ml.get("precision_coverage"))),
    ]
    for names in sources:
        for c in names:
            if str(c) not in out:
                out.append(str(c))
    return out


def fneg(x: Any) -> str:
    """A negative threshold below 0 means the class is never decided negative."""
    v = num(x)
    if v is None:
        return DASH
    return f"never ({v:.2f})" if v < 0.0 else f"{v:.3f}"


def _largest(s: Mapping[str, Any], names: list[str]) -> tuple[list[str], str]:
    """At most ``plots.MAX_PLOT_CLASSES`` classes, those with most positives first kept."""
    if len(names) <= plots.MAX_PLOT_CLASSES:
        return names, ""
    pc = as_dict(as_dict(ml_block(s).get("counts")).get("per_class"))
    ranked = sorted(names, key=lambda c: -(num(as_dict(pc.get(c)).get("positive")) or 0))
    keep = set(ranked[: plots.MAX_PLOT_CLASSES])
    return [c for c in names if c in keep], f" (the {plots.MAX_PLOT_CLASSES} largest classes)"


# --------------------------------------------------------------------------- section


def sec_multilabel(s: Mapping[str, Any]) -> str:
    """A multilabel run is judged per class: decisions, thresholds, curves and label sets."""
    ml = ml_block(s)
    if not ml:
        return section(
            "multilabel",
            "Multilabel: per-class decisions",
            '<p class="note">This multilabel run has no multilabel statistics in its summary.</p>',
        )
    parts = [
        "<p>Each class is decided on its own: <b>positive</b> when its calibrated score reaches "
        "the class's positive threshold, <b>negative</b> when the score is at or below its "
        "negative threshold, otherwise <b>undecided</b>. An item is auto-accepted only when no "
        "class is undecided; the rest go to review.</p>",
        _overview_part(s),
        *_class_part(s),
    ]
    curves = plot("precision vs coverage per class", _plot_precision_coverage, s)
    if curves:
        parts += ["<h3>Precision vs coverage per class</h3>", curves]
    sets = [
        plot("label cardinality", _plot_cardinality, s),
        plot("label co-occurrence", _plot_cooccurrence, s),
    ]
    sets = [p for p in sets if p]
    if sets:
        parts += ["<h3>Label sets</h3>", f'<div class="grid2">{"".join(sets)}</div>']
    return section("multilabel", "Multilabel: per-class decisions", "".join(parts))


def _overview_part(s: Mapping[str, Any]) -> str:
    """Items, accepted items and the mean number of positives per item."""
    counts = as_dict(ml_block(s).get("counts"))
    if not counts:
        return ""
    total, accepted = counts.get("total"), counts.get("accepted")
    card = [num(v) or 0.0 for v in as_list(counts.get("cardinality"))]
    n = sum(card)
    mean = sum(i * v for i, v in enumerate(card)) / n if n else None
    return kv(
        [
            ("Labeled items", fint(total)),
            (
                "Auto-accepted (no class undecided)",
                f"{fint(accepted)} ({fpct(ratio(accepted, total))})",
            ),
            ("Positive classes per item (mean)", DASH if mean is None else f"{mean:.2f}"),
            ("Items with no positive class", fpct(card[0] / n) if n else None),
        ]
    )


def _class_part(s: Mapping[str, Any]) -> list[str]:
    """One row per class: decisions over all items and the two thresholds with their source."""
    ml = ml_block(s)
    pc = as_dict(as_dict(ml.get("counts")).get("per_class"))
    thr = as_dict(ml.get("thresholds"))
    names = ml_classes(s)
    if not names or not (pc or thr):
        return []
    head = ["class", "positive", "undecided", "negative", "undecided share"]
    head += ["positive threshold", "from", "negative threshold", "from"]
    rows = []
    for c in names:
        d = as_dict(pc.get(c))
        known = [to_int(d.get(k)) for k in ("positive", "undecided", "negative")]
        total = (
            sum(v for v in known if v is not None) if any(v is not None for v in known) else None
        )
        rows.append(
            [
                c,
                fint(d.get("positive")),
                fint(d.get("undecided")),
                fint(d.get("negative")),
                fpct(ratio(d.get("undecided"), total)),
                fthr(as_dict(thr.get("positive")).get(c)),
                _source_badge(as_dict(thr.get("positive_source")).get(c), _POS_BADGE),
                fneg(as_dict(thr.get("negative")).get(c)),
                _source_badge(as_dict(thr.get("negative_source")).get(c), _NEG_BADGE),
            ]
        )
    return [
        "<h3>Per-class decisions and thresholds</h3>",
        table(head, rows, num={1, 2, 3, 4, 5, 7}),
        '<p class="note">Counts are over all labeled items. A class undecided on many items '
        "holds many items back from auto-acceptance.</p>",
    ]


def _source_badge(src: Any, names: Mapping[str, tuple[str, str]]) -> Any:
    """The threshold's source as a badge; "—" when the summary does not say."""
    if src in (None, ""):
        return DASH
    text, kind = names.get(str(src), (str(src), "neutral"))
    return badge(text, kind)


# --------------------------------------------------------------------------- plots


def _curve(d: Any) -> list[tuple[float, float, float]]:
    """(threshold, coverage, precision) of one class's curve, finite points only."""
    d = as_dict(d)
    cols = [as_list(d.get(k)) for k in ("threshold", "coverage", "precision")]
    pts = []
    for t, c, p in zip(*cols, strict=False):
        t, c, p = num(t), num(c), num(p)
        if t is not None and c is not None and p is not None:
            pts.append((t, c, p))
    return pts


def _mark_threshold(ax: Any, pts: list[tuple[float, float, float]], t: float | None) -> None:
    """The point where the class's positive threshold cuts its curve, or "never positive"."""
    if t is None:
        return
    if t > 1.0:
        ax.text(0.03, 0.05, "never positive (target unreachable)", transform=ax.transAxes,
                fontsize=7, color=C_TARGET)  # fmt: skip
        return
    at = [p for p in pts if p[0] >= t]
    if not at:
        return
    _, c, p = min(at, key=lambda q: q[0])  # the lowest cut still at or above t
    ax.plot([c], [p], "D", color=C_TARGET, ms=5, zorder=4)
    ax.text(
        0.03,
        0.05,
        f"threshold {t:.2f}: coverage {c:.0%}, precision {p:.2f}",
        transform=ax.transAxes,
        fontsize=7,
        color=C_TARGET,
    )


def _plot_precision_coverage(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Small multiples: each class's precision vs coverage, target line, its threshold."""
    ml = ml_block(s)
    curves = as_dict(ml.get("precision_coverage"))
    names = [c for c in ml_classes(s) if len(_curve(curves.get(c))) >= 1]
    if not names:
        return None
    names, note = _largest(s, names)
    target = num(ml.get("target_precision"))
    if target is None:
        target = num(as_dict(s.get("qc")).get("target_precision"))
    pos_thr = as_dict(as_dict(ml.get("thresholds")).get("positive"))
    ncols = 1 if len(names) == 1 else 2 if len(names) <= 4 else 3 if len(names) <= 9 else 4
    nrows = math.ceil(len(names) / ncols)
    width = {1: 6.0, 2: 10.0, 3: 10.5, 4: 11.0}[ncols]
    fig, axes = figure(width, 0.5 + 2.1 * nrows, nrows, ncols, sharex=True, sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        c = names[i]
        pts = sorted(_curve(curves.get(c)), key=lambda q: q[1])
        ax.plot([q[1] for q in pts], [q[2] for q in pts], color=C_ACCEPTED, lw=1.6)
        if target is not None:
            ax.axhline(target, color=C_TARGET, ls="--", lw=1.0)
        _mark_threshold(ax, pts, num(pos_thr.get(c)))
        ax.set_title(c, fontsize=9)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.03)
    fig.supxlabel("coverage (share of items marked positive)", fontsize=9)
    fig.supylabel("precision (share of those truly positive)", fontsize=9)
    fig.suptitle("Precision vs coverage per class" + note, fontsize=10, fontweight="bold")
    caption = (
        "Each point is one cut of the class's calibrated score: coverage = share of items with "
        "a score at or above it, precision = share of those truly positive, on reference "
        "labels. The diamond marks the class's positive threshold"
    )
    caption += f"; the dashed line is the target precision {target:g}." if target else "."
    return fig, caption + (cap_note() if note else "")


def _plot_cardinality(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Grouped bars: items by number of positive classes, all vs auto-accepted."""
    import numpy as np

    counts = as_dict(ml_block(s).get("counts"))
    all_ = [num(v) or 0.0 for v in as_list(counts.get("cardinality"))]
    acc = [num(v) or 0.0 for v in as_list(counts.get("accepted_cardinality"))]
    if not any(all_):
        return None
    n = max(len(all_), len(acc))
    all_ += [0.0] * (n - len(all_))
    acc += [0.0] * (n - len(acc))
    fig, axes = figure(5.4, 3.8)
    ax = axes[0][0]
    x = np.arange(n)
    ax.bar(x - 0.2, all_, 0.4, color=C_LABELED, label="labeled")
    ax.bar(x + 0.2, acc, 0.4, color=C_ACCEPTED, label="auto-accepted")
    ax.set_xticks(x, [str(i) for i in range(n)])
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("positive classes per item")
    ax.set_ylabel("items")
    ax.set_title("Label cardinality")
    ax.legend(loc="upper right")
    return fig, "How many classes each item was decided positive for (undecided ones not counted)."


def _cooccurrence(s: Mapping[str, Any]) -> tuple[list[str], list[list[float]]] | None:
    """(classes, square matrix) from the counts block, or None when it does not fit."""
    counts = as_dict(ml_block(s).get("counts"))
    names = [str(c) for c in as_list(counts.get("classes"))] or ml_classes(s)
    rows = as_list(counts.get("cooccurrence"))
    if not names or len(rows) != len(names):
        return None
    matrix = [[num(v) or 0.0 for v in as_list(r)] for r in rows]
    if any(len(r) != len(names) for r in matrix) or not any(any(r) for r in matrix):
        return None
    return names, matrix


def _plot_cooccurrence(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Heat map of P(column positive | row positive); the diagonal holds row counts."""
    import numpy as np

    got = _cooccurrence(s)
    if got is None:
        return None
    names, matrix = got
    keep, note = _largest(s, names)
    idx = [names.index(c) for c in keep]
    m = np.array(matrix)[np.ix_(idx, idx)]
    diag = np.diag(m).copy()
    cond = np.divide(m, diag[:, None], out=np.full_like(m, np.nan), where=diag[:, None] > 0)
    np.fill_diagonal(cond, np.nan)
    k = len(keep)
    side = min(7.0, max(4.4, 0.38 * k + 2.6))
    fig, axes = figure(side + 0.8, side)
    ax = axes[0][0]
    im = ax.imshow(cond, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), keep, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), keep)
    ax.grid(visible=False)
    for i in range(k):
        ax.text(i, i, f"{int(diag[i]):,}", ha="center", va="center", fontsize=6.5, color=C_MUTED)
        if k > MAX_ANNOTATED_CLASSES:
            continue
        for j in range(k):
            if i != j and not np.isnan(cond[i, j]):
                color = "white" if cond[i, j] > 0.6 else "black"
                ax.text(j, i, f"{cond[i, j]:.0%}", ha="center", va="center", fontsize=7,
                        color=color)  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of row's positives")
    ax.set_xlabel("also positive for")
    ax.set_ylabel("items positive for")
    ax.set_title("Label co-occurrence" + note)
    caption = (
        "Row c, column d: the share of items positive for c that are also positive for d. "
        "The diagonal gives the number of items positive for c."
    )
    return fig, caption + (cap_note() if note else "")
