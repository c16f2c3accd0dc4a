"""Inline plots for the report pages: matplotlib figures drawn off-screen and embedded as
PNG data URIs, so a page stays one self-contained file.

Sits just above :mod:`raylabel.report.kit`; section modules build their plots with
:func:`figure` and embed them with :func:`plot`, which turns any drawing failure into a
short note instead of a failed run. matplotlib is imported lazily: without it the pages
still render, only without plots.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

from raylabel.report.kit import e

log = logging.getLogger(__name__)

DPI = 100
#: Most classes drawn in the per-class plots; more would make unreadable panels.
#: Read as ``plots.MAX_PLOT_CLASSES`` at draw time, so it can be lowered in one place.
MAX_PLOT_CLASSES = 24

# Colours: one hue for "all labeled" vs "auto-accepted", one pair for before/after.
C_LABELED = "#b9c7da"
C_ACCEPTED = "#2b6cb0"
C_BEFORE = "#dd6b20"
C_AFTER = "#2b6cb0"
C_TARGET = "#c53030"
C_MUTED = "#718096"

#: The report's matplotlib style, applied only while a page renders.
RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.facecolor": "white",
}


def figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: Any) -> Any:
    """Plots must not touch the calling process's pyplot backend or figure registry."""
    # Why not pyplot / matplotlib.use: switching the process-wide backend from library code
    # would break a caller's notebook or GUI; an explicit Agg canvas needs no switch, and a
    # figure not registered with pyplot cannot leak. Returns (figure, axes grid).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def png(fig: Any) -> str:
    """A page embeds its plots as data URIs (and frees each figure once encoded)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plot(what: str, builder: Callable[[Mapping[str, Any]], Any], s: Mapping[str, Any]) -> str:
    """A plot that cannot be drawn must cost a note, never the page ("" if nothing to draw)."""
    try:
        made = builder(s)
        if made is None:
            return ""
        fig, caption = made
        uri = png(fig)
    except Exception as exc:
        log.warning("report: plot %r could not be drawn", what, exc_info=True)
        return f'<p class="note">(plot "{e(what)}" unavailable: {e(type(exc).__name__)})</p>'
    cap = f"<figcaption>{e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{e(what)}">{cap}</figure>'


def cap_note() -> str:
    """A per-class plot that dropped classes must say so in its caption."""
    return f" Only the {MAX_PLOT_CLASSES} largest classes are drawn; the per-class table lists all."


def plot_style() -> contextlib.AbstractContextManager[Any]:
    """Pages share one plot style without changing the caller's global matplotlib settings."""
    try:
        import matplotlib
    except ImportError:  # plots then degrade to notes; the numbers still render
        log.warning("report: matplotlib is not installed; the report has no plots")
        return contextlib.nullcontext()
    return matplotlib.rc_context(RC)
