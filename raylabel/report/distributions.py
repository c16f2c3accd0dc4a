"""The distributions section of the run report: how many labels each class got, how many
were auto-accepted, and where each class's confidence mass sits against its threshold."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from raylabel.report import plots
from raylabel.report.kit import as_dict, as_list, class_names, num, section, to_int
from raylabel.report.plots import C_ACCEPTED, C_LABELED, C_MUTED, C_TARGET, cap_note, figure, plot


def sec_distributions(s: Mapping[str, Any]) -> str:
    """Class balance and confidence mass per class show where a lower target would pay off."""
    body = plot("class distribution", _plot_classes, s) + plot(
        "confidence histograms", _plot_histograms, s
    )
    if not body:
        return ""
    return section("distributions", "Distributions", body)


def _class_counts(s: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(class, labeled, accepted) for every known class."""
    pc = as_dict(s.get("per_class"))
    return [
        (
            c,
            to_int(as_dict(pc.get(c)).get("labeled")) or 0,
            to_int(as_dict(pc.get(c)).get("accepted")) or 0,
        )
        for c in class_names(s)
    ]


def _plot_classes(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Grouped bars: labeled vs auto-accepted per predicted class, coverage on top."""
    import numpy as np

    rows = _class_counts(s)
    if not rows or not any(n for _, n, _ in rows):
        return None
    note = ""
    if len(rows) > plots.MAX_PLOT_CLASSES:
        rows = sorted(rows, key=lambda r: -r[1])[: plots.MAX_PLOT_CLASSES]
        note = f" (the {plots.MAX_PLOT_CLASSES} largest of {len(class_names(s))} classes)"
    n = len(rows)
    fig, axes = figure(min(11.0, max(6.0, 0.55 * n + 3.0)), 3.6)
    ax = axes[0][0]
    x = np.arange(n)
    labeled = [r[1] for r in rows]
    accepted = [r[2] for r in rows]
    ax.bar(x - 0.2, labeled, 0.4, color=C_LABELED, label="labeled")
    ax.bar(x + 0.2, accepted, 0.4, color=C_ACCEPTED, label="auto-accepted")
    top = max(labeled) or 1
    for i, (_, lab, acc) in enumerate(rows):
        if lab:
            ax.text(
                i,
                lab + top * 0.02,
                f"{100 * acc / lab:.0f}%",
                ha="center",
                va="bottom",
                fontsize=7.5,
                color=C_MUTED,
            )
    rotate = n > 6
    ax.set_xticks(
        x, [r[0] for r in rows], rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_ylim(0, top * 1.15)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("items")
    ax.set_title("Labels per class: labeled vs auto-accepted" + note)
    ax.legend(loc="upper right")
    caption = "Percentages above the bars are each class's coverage (accepted / labeled)."
    return fig, caption + (cap_note() if note else "")


def _plot_histograms(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Small multiples of calibrated confidence per class, accepted part shaded, threshold."""
    import numpy as np

    ch = as_dict(s.get("confidence_histogram"))
    hists = as_dict(ch.get("per_class"))
    pc = as_dict(s.get("per_class"))
    names = [c for c in class_names(s) if as_list(hists.get(c))]
    if not names:
        return None
    note = ""
    if len(names) > plots.MAX_PLOT_CLASSES:
        names = sorted(names, key=lambda c: -sum(num(v) or 0 for v in as_list(hists.get(c))))
        names = names[: plots.MAX_PLOT_CLASSES]
        note = f" (the {plots.MAX_PLOT_CLASSES} largest classes)"
    ncols = 1 if len(names) == 1 else 2 if len(names) <= 4 else 3 if len(names) <= 9 else 4
    nrows = math.ceil(len(names) / ncols)
    width = {1: 7.0, 2: 10.0, 3: 10.5, 4: 11.0}[ncols]
    fig, axes = figure(width, 0.4 + 2.0 * nrows, nrows, ncols, sharex=True)
    edges_in = [num(v) for v in as_list(ch.get("edges"))]
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        c = names[i]
        counts = np.array([num(v) or 0.0 for v in as_list(hists.get(c))])
        if len(edges_in) == counts.size + 1 and None not in edges_in:
            edges = np.array(edges_in, dtype=float)
        else:
            edges = np.linspace(0.0, 1.0, counts.size + 1)
        info = as_dict(pc.get(c))
        t = num(info.get("threshold"))
        ax.stairs(counts, edges, fill=True, color=C_LABELED, label="needs review")
        if t is not None and t <= 1.0:
            acc = np.where(edges[:-1] >= t - 1e-12, counts, 0.0)
            ax.stairs(acc, edges, fill=True, color=C_ACCEPTED, label="auto-accepted")
            ax.axvline(t, color=C_TARGET, lw=1.1, ls="--")
            ax.text(
                t,
                0.97,
                f"t={t:.3f} " if t > 0.2 else f" t={t:.3f}",
                transform=ax.get_xaxis_transform(),
                ha="right" if t > 0.2 else "left",
                va="top",
                fontsize=7.5,
                color=C_TARGET,
            )
        elif t is not None:
            ax.text(
                0.5,
                0.6,
                "never accepted\n(target unreachable)",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=7.5,
                color=C_TARGET,
            )
        total = int(counts.sum())
        src = info.get("threshold_source")
        ax.set_title(f"{c}  (n={total:,}{f', {src} threshold' if src else ''})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.grid(axis="x", visible=False)
    axes.flat[0].legend(loc="upper left")
    fig.supxlabel("calibrated confidence of the predicted class", fontsize=9)
    fig.supylabel("items", fontsize=9)
    fig.suptitle(
        "Confidence per predicted class, with each class's acceptance threshold" + note,
        fontsize=10,
        fontweight="bold",
    )
    caption = (
        "Items at or above a class's threshold t (dashed red) are auto-accepted (dark); the "
        "rest go to review. Mass piled just below t is where a lower target would buy coverage."
    )
    return fig, caption + (cap_note() if note else "")
