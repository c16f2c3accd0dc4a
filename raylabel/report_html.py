"""Self-contained HTML report of one labeling run, for people deciding whether to trust it.

``report.build_summary`` gives the machine-readable summary.json; :func:`render` turns that
dict into one HTML file with inline CSS and inline PNG plots (base64 data URIs), so the
report can be mailed, attached to a ticket or opened straight from object storage with no
assets to fetch and no JavaScript. It reads top-down: headline numbers, trust (thresholds
and calibration), distributions, review sample, evaluation, errors, run details.

Everything past the headline is optional and any missing, None or NaN value renders as "—".
The report is written *before* the run is committed, so a malformed field must never fail
a run: each section and plot is guarded and degrades to a short note (and a log warning).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

DPI = 100
DASH = "—"
#: Most classes drawn in the per-class plots; more would make unreadable panels.
MAX_PLOT_CLASSES = 24
#: Most rows in the long tables (strata allocation, error examples).
MAX_TABLE_ROWS = 60

# Colours: one hue for "all labeled" vs "auto-accepted", one pair for before/after.
C_LABELED = "#b9c7da"
C_ACCEPTED = "#2b6cb0"
C_BEFORE = "#dd6b20"
C_AFTER = "#2b6cb0"
C_TARGET = "#c53030"
C_MUTED = "#718096"

_RC = {
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

_CSS = """
:root { --fg:#1a202c; --muted:#5a6578; --line:#e2e8f0; --bg-soft:#f7fafc;
  --ok:#276749; --ok-bg:#e6f4ea; --warn:#8a5a00; --warn-bg:#fdf3dc;
  --bad:#9b2c2c; --bad-bg:#fde8e8; --accent:#2b6cb0; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); margin: 0; padding: 24px; line-height: 1.45; font-size: 14px;
  background: #fff; }
main { max-width: 1120px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 22px 0 8px; }
p { margin: 6px 0; }
.meta { color: var(--muted); margin: 0 0 8px; }
.meta b { color: var(--fg); font-weight: 600; }
.note { color: var(--muted); font-size: 12.5px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr));
  gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  background: var(--bg-soft); }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; }
.card .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .s { color: var(--muted); font-size: 12px; }
.card.bad { border-color: #f5b5b5; background: var(--bad-bg); }
.card.ok { border-color: #a8d5b5; background: var(--ok-bg); }
.card.warn { border-color: #f0d28a; background: var(--warn-bg); }
ul.findings { padding-left: 0; list-style: none; margin: 8px 0; }
ul.findings li { margin: 4px 0; padding: 6px 10px; border-left: 4px solid var(--line);
  background: var(--bg-soft); }
ul.findings li.ok { border-color: var(--ok); }
ul.findings li.warn { border-color: #d69e2e; }
ul.findings li.bad { border-color: var(--bad); }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--bg-soft); font-weight: 600; border-bottom: 2px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { background: none; border-bottom: 1px solid var(--line); width: 220px;
  font-weight: 500; color: var(--muted); }
td.id { min-width: 14em; max-width: 26em; overflow-wrap: anywhere; }
td.msg { overflow-wrap: anywhere; }
td.msg code { white-space: pre-wrap; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
  white-space: nowrap; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.neutral { background: #edf2f7; color: var(--muted); }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line);
  border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; max-width: 900px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr));
  gap: 16px; align-items: start; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px;
  border-top: 1px solid var(--line); padding-top: 8px; }
@media print {
  body { padding: 0; font-size: 11.5px; }
  main { max-width: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h3 { break-after: avoid; page-break-after: avoid; }
  figure, table, .cards, ul.findings { break-inside: avoid; page-break-inside: avoid; }
  .card, th, .badge, ul.findings li { -webkit-print-color-adjust: exact;
    print-color-adjust: exact; }
  .grid2 { display: block; }
}
"""


# --------------------------------------------------------------------------- values


class _Html(str):
    """A string that is already safe HTML (tables escape every other cell)."""


def _e(x: Any) -> str:
    """Escape user data for HTML (ids and error messages come from the input)."""
    return html.escape("" if x is None else str(x), quote=True)


def _num(x: Any) -> float | None:
    """A finite float, or None for missing/None/NaN/inf/non-numeric values."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(x: Any) -> int | None:
    """A rounded int, or None (see :func:`_num`)."""
    v = _num(x)
    return None if v is None else round(v)


def _dict(x: Any) -> Mapping[str, Any]:
    """``x`` if it is a mapping, else an empty one, so lookups never raise."""
    return x if isinstance(x, Mapping) else {}


def _list(x: Any) -> list[Any]:
    """``x`` as a list if it is a list/tuple, else empty."""
    return list(x) if isinstance(x, list | tuple) else []


def _fint(x: Any) -> str:
    """Integer with thousands separators."""
    v = _int(x)
    return DASH if v is None else f"{v:,}"


def _fpct(x: Any, digits: int = 1) -> str:
    """Share as a percentage."""
    v = _num(x)
    return DASH if v is None else f"{100 * v:.{digits}f}%"


def _ff(x: Any, digits: int = 3) -> str:
    """Plain float with fixed decimals."""
    v = _num(x)
    return DASH if v is None else f"{v:.{digits}f}"


def _fsec(x: Any) -> str:
    """Duration in s / min / h, whichever reads best."""
    v = _num(x)
    if v is None:
        return DASH
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.2f} h"


def _fthr(x: Any) -> str:
    """Acceptance threshold; above 1.0 means no confidence can pass it."""
    v = _num(x)
    if v is None:
        return DASH
    return f"never ({v:.2f})" if v > 1.0 else f"{v:.3f}"


def _ratio(a: Any, b: Any) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    x, y = _num(a), _num(b)
    return None if x is None or not y else x / y


def _ci(est: Mapping[str, Any]) -> str:
    """Confidence interval text ``lo – hi``."""
    lo, hi = _num(est.get("lower")), _num(est.get("upper"))
    if lo is None or hi is None:
        return DASH
    return f"{lo:.3f} – {hi:.3f}"


def _classes(s: Mapping[str, Any]) -> list[str]:
    """Class names in the summary's order, then any extra ones found in per-class data."""
    out: list[str] = [str(c) for c in _list(s.get("classes"))]
    extra = list(_dict(s.get("per_class"))) + list(
        _dict(_dict(s.get("confidence_histogram")).get("per_class"))
    )
    for c in extra:
        if str(c) not in out:
            out.append(str(c))
    return out


def _code(v: Any) -> _Html | None:
    """Monospace cell for ids and paths (None when missing, so :func:`_kv` skips it)."""
    return None if v in (None, "") else _Html(f"<code>{_e(v)}</code>")


def _badge(text: str, kind: str) -> _Html:
    """Small coloured label: kind is ok / warn / bad / neutral."""
    return _Html(f'<span class="badge {kind}">{_e(text)}</span>')


# --------------------------------------------------------------------------- html bits


def _table(
    head: Sequence[str],
    rows: Iterable[Sequence[Any]],
    num: Iterable[int] = (),
    col_class: Mapping[int, str] | None = None,
) -> str:
    """HTML table; cells are escaped unless :class:`_Html`, ``num`` columns right-aligned.

    ``col_class`` adds a CSS class to every cell of a column (e.g. how it may wrap).
    """
    numeric = set(num)
    extra = dict(col_class or {})

    def attr(i: int) -> str:
        names = " ".join(n for n in ("num" if i in numeric else "", extra.get(i, "")) if n)
        return f' class="{names}"' if names else ""

    out = ["<table><thead><tr>"]
    out.extend(f"<th{attr(i)}>{_e(h)}</th>" for i, h in enumerate(head))
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, _Html) else _e(cell)
            out.append(f"<td{attr(i)}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _kv(rows: Iterable[tuple[str, Any]]) -> str:
    """Two-column key/value table; rows whose value is None are left out."""
    body = []
    for k, v in rows:
        if v is None:
            continue
        text = v if isinstance(v, _Html) else _e(v)
        body.append(f"<tr><th>{_e(k)}</th><td>{text}</td></tr>")
    return f'<table class="kv"><tbody>{"".join(body)}</tbody></table>' if body else ""


def _card(key: str, value: str, sub: str = "", kind: str = "") -> str:
    """One headline number."""
    sub_html = f'<div class="s">{_e(sub)}</div>' if sub else ""
    return (
        f'<div class="card {kind}"><div class="k">{_e(key)}</div>'
        f'<div class="v">{_e(value)}</div>{sub_html}</div>'
    )


def _section(sid: str, title: str, body: str) -> str:
    """A top-level report section with an anchor id."""
    return f'<section id="{_e(sid)}"><h2>{_e(title)}</h2>{body}</section>'


def _guard(what: str, fn: Callable[..., str], *args: Any) -> str:
    """Run one section builder; a failure becomes a visible note, never a failed run."""
    try:
        return fn(*args)
    except Exception as exc:
        log.warning("report: %s could not be rendered", what, exc_info=True)
        return f'<p class="note">({_e(what)} unavailable: {_e(type(exc).__name__)}: {_e(exc)})</p>'


# --------------------------------------------------------------------------- plotting


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: Any) -> Any:
    """A new Agg-backed figure and its axes grid, outside pyplot's global figure registry.

    Why not ``pyplot``/``matplotlib.use``: switching the process-wide backend from library
    code would break a caller's notebook or GUI; an explicit Agg canvas needs no switch and
    a figure not registered with pyplot cannot leak.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _png(fig: Any) -> str:
    """Encode a figure as a PNG data URI and release it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plot(what: str, builder: Callable[[Mapping[str, Any]], Any], s: Mapping[str, Any]) -> str:
    """``<figure>`` for one plot ("" when there is nothing to draw, a note on failure)."""
    try:
        made = builder(s)
        if made is None:
            return ""
        fig, caption = made
        uri = _png(fig)
    except Exception as exc:
        log.warning("report: plot %r could not be drawn", what, exc_info=True)
        return f'<p class="note">(plot "{_e(what)}" unavailable: {_e(type(exc).__name__)})</p>'
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{_e(what)}">{cap}</figure>'


def _cap_note() -> str:
    """Caption suffix when a per-class plot had to drop classes."""
    return f" Only the {MAX_PLOT_CLASSES} largest classes are drawn; the per-class table lists all."


def _class_counts(s: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(class, labeled, accepted) for every known class."""
    pc = _dict(s.get("per_class"))
    return [
        (c, _int(_dict(pc.get(c)).get("labeled")) or 0, _int(_dict(pc.get(c)).get("accepted")) or 0)
        for c in _classes(s)
    ]


def _plot_classes(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Grouped bars: labeled vs auto-accepted per predicted class, coverage on top."""
    import numpy as np

    rows = _class_counts(s)
    if not rows or not any(n for _, n, _ in rows):
        return None
    note = ""
    if len(rows) > MAX_PLOT_CLASSES:
        rows = sorted(rows, key=lambda r: -r[1])[:MAX_PLOT_CLASSES]
        note = f" (the {MAX_PLOT_CLASSES} largest of {len(_classes(s))} classes)"
    n = len(rows)
    fig, axes = _figure(min(11.0, max(6.0, 0.55 * n + 3.0)), 3.6)
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
    return fig, caption + (_cap_note() if note else "")


def _plot_histograms(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Small multiples of calibrated confidence per class, accepted part shaded, threshold."""
    import numpy as np

    ch = _dict(s.get("confidence_histogram"))
    hists = _dict(ch.get("per_class"))
    pc = _dict(s.get("per_class"))
    names = [c for c in _classes(s) if _list(hists.get(c))]
    if not names:
        return None
    note = ""
    if len(names) > MAX_PLOT_CLASSES:
        names = sorted(names, key=lambda c: -sum(_num(v) or 0 for v in _list(hists.get(c))))
        names = names[:MAX_PLOT_CLASSES]
        note = f" (the {MAX_PLOT_CLASSES} largest classes)"
    ncols = 1 if len(names) == 1 else 2 if len(names) <= 4 else 3 if len(names) <= 9 else 4
    nrows = math.ceil(len(names) / ncols)
    width = {1: 7.0, 2: 10.0, 3: 10.5, 4: 11.0}[ncols]
    fig, axes = _figure(width, 0.4 + 2.0 * nrows, nrows, ncols, sharex=True)
    edges_in = [_num(v) for v in _list(ch.get("edges"))]
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        c = names[i]
        counts = np.array([_num(v) or 0.0 for v in _list(hists.get(c))])
        if len(edges_in) == counts.size + 1 and None not in edges_in:
            edges = np.array(edges_in, dtype=float)
        else:
            edges = np.linspace(0.0, 1.0, counts.size + 1)
        info = _dict(pc.get(c))
        t = _num(info.get("threshold"))
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
    return fig, caption + (_cap_note() if note else "")


def _reliability(d: Any) -> tuple[list[float], list[float], list[float]]:
    """(confidence, accuracy, count) of the non-empty, finite bins."""
    d = _dict(d)
    conf, acc, cnt = _list(d.get("confidence")), _list(d.get("accuracy")), _list(d.get("count"))
    out: tuple[list[float], list[float], list[float]] = ([], [], [])
    for i in range(min(len(conf), len(acc))):
        c, a = _num(conf[i]), _num(acc[i])
        n = _num(cnt[i]) if i < len(cnt) else None
        if c is None or a is None:
            continue
        out[0].append(c)
        out[1].append(a)
        out[2].append(n if n is not None else 1.0)
    return out


def _plot_reliability(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Reliability diagram before/after temperature scaling, marker area ~ bin count."""
    v = _dict(s.get("validation"))
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
    fig, axes = _figure(5.4, 4.4)
    ax = axes[0][0]
    ax.plot([0, 1], [0, 1], color=C_MUTED, ls="--", lw=1, label="perfect calibration")
    temp = _num(_dict(s.get("qc")).get("temperature"))
    for name, (conf, acc, cnt), ece, color, marker in series:
        e = _num(ece)
        label = name
        if name.startswith("after") and temp is not None:
            label += f", T={temp:.2f}"
        label += f" (ECE {e:.3f})" if e is not None else " (ECE —)"
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
    n = _int(v.get("n"))
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

    cp = _dict(_dict(s.get("validation")).get("coverage_precision"))
    thr, cov, prec = (_list(cp.get(k)) for k in ("threshold", "coverage", "precision"))
    pts = [
        (t, c, p)
        for t, c, p in zip(map(_num, thr), map(_num, cov), map(_num, prec), strict=False)
        if t is not None and c is not None and p is not None and c > 0
    ]
    if len(pts) < 2:
        return None
    pts.sort()
    t_arr, c_arr, p_arr = (np.array(a) for a in zip(*pts, strict=True))
    qc = _dict(s.get("qc"))
    target, g = _num(qc.get("target_precision")), _num(qc.get("global_threshold"))
    fig, axes = _figure(5.4, 4.4)
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


def _plot_errors(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Horizontal bars of failed items per pipeline stage."""
    rows = [(str(k), _int(v) or 0) for k, v in _dict(s.get("errors_by_stage")).items()]
    rows = sorted((r for r in rows if r[1] > 0), key=lambda r: -r[1])[:MAX_PLOT_CLASSES]
    if not rows:
        return None
    fig, axes = _figure(7.0, 0.9 + 0.38 * len(rows))
    ax = axes[0][0]
    y = list(range(len(rows)))
    ax.barh(y, [r[1] for r in rows], color=C_TARGET, alpha=0.8, height=0.6)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    top = max(r[1] for r in rows)
    for i, (_, n) in enumerate(rows):
        ax.text(n + top * 0.01, i, f"{n:,}", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.12)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("failed items")
    ax.set_ylabel("stage")
    ax.set_title("Errors by pipeline stage")
    return fig, ""


def _eval_rows(ev: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(key, display name, estimate) for overall, accepted and each class."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    if isinstance(ev.get("overall"), Mapping):
        rows.append(("overall", "overall accuracy (all labels)", ev["overall"]))
    if isinstance(ev.get("accepted"), Mapping):
        rows.append(("accepted", "accepted-label precision", ev["accepted"]))
    for c, est in _dict(ev.get("per_class")).items():
        if isinstance(est, Mapping):
            rows.append((f"class:{c}", f"class {c}: precision", est))
    return rows


def _plot_evaluation(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Point estimates with confidence-interval bars vs the target precision line."""
    rows = _eval_rows(_dict(s.get("evaluation")))[: MAX_PLOT_CLASSES + 2]
    if not any(_num(r[2].get("point")) is not None for r in rows):
        return None
    target = _num(_dict(s.get("qc")).get("target_precision"))
    fig, axes = _figure(7.5, 1.0 + 0.36 * len(rows))
    ax = axes[0][0]
    lows = [target] if target is not None else []
    for i, (key, _, est) in enumerate(rows):
        p = _num(est.get("point"))
        if p is None:
            ax.text(
                0.5,
                i,
                "no reviews",
                transform=ax.get_yaxis_transform(),
                va="center",
                ha="center",
                fontsize=8,
                color=C_MUTED,
            )
            continue
        lo, hi = _num(est.get("lower")), _num(est.get("upper"))
        lo = p if lo is None else min(lo, p)
        hi = p if hi is None else max(hi, p)
        lows.append(lo)
        color = C_ACCEPTED if key == "accepted" else "#1a202c" if key == "overall" else C_MUTED
        ax.errorbar(
            [p], [i], xerr=[[p - lo], [hi - p]], fmt="o", color=color, ms=5, capsize=3, lw=1.4
        )
    if target is not None:
        ax.axvline(target, color=C_TARGET, ls="--", lw=1.1, label=f"target precision {target:g}")
        ax.legend(loc="best")
    ax.set_yticks(range(len(rows)), [r[1] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(max(0.0, min(lows or [0.0]) - 0.03), 1.005)
    ax.grid(axis="y", visible=False)
    level = _num(_dict(rows[0][2]).get("confidence_level")) if rows else None
    ax.set_xlabel(
        "estimated accuracy / precision"
        + (f" with {level:.0%} confidence interval" if level else " with confidence interval")
    )
    ax.set_ylabel("estimate")
    ax.set_title("Estimates from the reviewed sample")
    return fig, (
        "Only accepted-label precision is held to the target; overall accuracy includes the "
        "low-confidence labels that were sent to review."
    )


# --------------------------------------------------------------------------- sections


def _header(s: Mapping[str, Any]) -> str:
    """Title and one line of identity (drop, run, model, time)."""
    bits = [
        ("drop", s.get("drop")),
        ("run", s.get("run_id")),
        ("model", s.get("model_version")),
        ("created", s.get("created_at")),
    ]
    meta = " · ".join(f"{_e(k)} <b>{_e(v)}</b>" for k, v in bits if v not in (None, ""))
    title = "raylabel run report"
    if s.get("drop"):
        title += f": {s['drop']}"
    return f"<header><h1>{_e(title)}</h1><p class='meta'>{meta}</p></header>"


def _verdict(est: Mapping[str, Any], target: float | None) -> tuple[str, str]:
    """(text, kind) comparing an estimate's interval with the target precision."""
    p, lo, hi = _num(est.get("point")), _num(est.get("lower")), _num(est.get("upper"))
    if p is None or target is None:
        return "no reviews" if p is None else "", "neutral"
    if lo is not None and lo >= target:
        return "meets target", "ok"
    if hi is not None and hi < target:
        return "below target", "bad"
    return "inconclusive", "warn"


def _findings(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Plain-language bullets (kind, text) a reader should see before any plot."""
    counts = _dict(s.get("counts"))
    qc = _dict(s.get("qc"))
    out: list[tuple[str, str]] = []
    n_in, labeled = _int(counts.get("input")), _int(counts.get("labeled"))
    errors, accepted = _int(counts.get("errors")), _int(counts.get("accepted"))
    target, level = _num(qc.get("target_precision")), _num(qc.get("confidence_level"))
    if labeled is not None and accepted is not None:
        text = (
            f"{accepted:,} of {labeled:,} labeled items "
            f"({_fpct(_ratio(accepted, labeled))}) were auto-accepted"
        )
        if target is not None:
            text += f" at target precision {target:g}"
            if level is not None:
                text += f" (one-sided {level:.0%} lower bound on validation)"
        out.append(("ok" if accepted else "warn", text + "; the rest need review."))
    if errors:
        out.append(
            (
                "bad",
                f"{errors:,} items failed ({_fpct(_ratio(errors, n_in), 2)} of input); see Errors.",
            )
        )
    if (
        n_in is not None
        and labeled is not None
        and errors is not None
        and (labeled + errors != n_in)
    ):
        out.append(
            (
                "bad",
                f"Item count mismatch: {n_in:,} in but {labeled:,} labeled + {errors:,} errors.",
            )
        )
    pc = _dict(s.get("per_class"))
    never = [c for c in _classes(s) if _dict(pc.get(c)).get("threshold_source") == "unreachable"]
    if never:
        which = "that class" if len(never) == 1 else "those classes"
        out.append(
            (
                "warn",
                "No threshold reaches the target for "
                f"{', '.join(never)}: nothing of {which} is auto-accepted.",
            )
        )
    pooled = [c for c in _classes(s) if _dict(pc.get(c)).get("threshold_source") == "global"]
    if pooled:
        out.append(
            (
                "warn",
                f"Too little validation evidence for {', '.join(pooled)}: "
                "the pooled global threshold is used.",
            )
        )
    v = _dict(s.get("validation"))
    before, after = _num(v.get("ece_before")), _num(v.get("ece_after"))
    if after is not None:
        text = f"Calibration error (ECE) on validation: {after:.3f} after temperature scaling"
        if before is not None:
            text += f" (was {before:.3f})"
        out.append(("ok" if after <= 0.05 else "warn", text + "."))
    ev = _dict(s.get("evaluation"))
    acc = ev.get("accepted")
    if isinstance(acc, Mapping) and _num(acc.get("point")) is not None:
        verdict, kind = _verdict(acc, target)
        text = (
            f"Reviewed sample: accepted-label precision {_ff(acc.get('point'))} "
            f"(CI {_ci(acc)}, {_fint(acc.get('n_reviewed'))} reviews)"
        )
        if verdict:
            text += f": {verdict}"
        out.append((kind if kind != "neutral" else "warn", text + "."))
    flags = _list(ev.get("flags"))
    if flags:
        out.append(
            (
                "warn",
                f"{len(flags)} reviewed strata disagree with their confidence (see Evaluation).",
            )
        )
    return out


def _sec_summary(s: Mapping[str, Any]) -> str:
    """Headline numbers and plain-language findings."""
    counts = _dict(s.get("counts"))
    qc = _dict(s.get("qc"))
    n_in = counts.get("input")
    labeled = counts.get("labeled")
    errors = _int(counts.get("errors"))
    cov = _num(_dict(s.get("coverage")).get("overall"))
    if cov is None:
        cov = _ratio(counts.get("accepted"), labeled)
    cards = [
        _card("Items in", _fint(n_in)),
        _card("Labeled", _fint(labeled), f"{_fpct(_ratio(labeled, n_in))} of input"),
        _card(
            "Errors",
            _fint(errors),
            f"{_fpct(_ratio(errors, n_in), 2)} of input",
            "bad" if errors else "",
        ),
        _card(
            "Auto-accepted",
            _fint(counts.get("accepted")),
            f"coverage {_fpct(cov)}",
            "ok" if counts.get("accepted") else "warn",
        ),
        _card(
            "Needs review",
            _fint(counts.get("needs_review")),
            f"{_fpct(_ratio(counts.get('needs_review'), labeled))} of labeled",
        ),
    ]
    if "duplicates" in counts:
        cards.append(_card("Duplicates", _fint(counts.get("duplicates")), "in the input"))
    target = _num(qc.get("target_precision"))
    if target is not None:
        level = _num(qc.get("confidence_level"))
        sub = f"{level:.0%} lower bound" if level is not None else ""
        cards.append(_card("Target precision", f"{target:g}", sub))
    acc = _dict(_dict(s.get("evaluation")).get("accepted"))
    if _num(acc.get("point")) is not None:
        _, kind = _verdict(acc, target)
        cards.append(
            _card(
                "Accepted precision",
                _ff(acc.get("point")),
                f"review est., CI {_ci(acc)}",
                kind if kind != "neutral" else "",
            )
        )
    items = "".join(f'<li class="{k}">{_e(t)}</li>' for k, t in _findings(s))
    body = f'<div class="cards">{"".join(cards)}</div>'
    if items:
        body += f'<ul class="findings">{items}</ul>'
    return _section("summary", "Summary", body)


_SOURCE_BADGE = {
    "class": ("own evidence", "ok"),
    "global": ("global (little evidence)", "warn"),
    "unreachable": ("unreachable: none accepted", "bad"),
}


def _sec_trust(s: Mapping[str, Any]) -> str:
    """Acceptance rule, per-class thresholds, calibration plots."""
    qc = _dict(s.get("qc"))
    v = _dict(s.get("validation"))
    parts = []
    if qc:
        parts.append("<h3>Acceptance rule</h3>")
        if qc.get("rule"):
            parts.append(
                f"<p>A label is auto-accepted when its calibrated confidence reaches "
                f"its class threshold: {_e(qc.get('rule'))}.</p>"
            )
        parts.append(
            _kv(
                [
                    ("Target precision", _ff(qc.get("target_precision"), 3)),
                    ("Confidence level", _fpct(qc.get("confidence_level"), 0)),
                    ("Temperature (calibration)", _ff(qc.get("temperature"), 3)),
                    ("Global threshold", _fthr(qc.get("global_threshold"))),
                ]
            )
        )
    pc = _dict(s.get("per_class"))
    val_acc = _dict(v.get("per_class_accuracy"))
    if pc:
        parts.append("<h3>Per-class thresholds and coverage</h3>")
        head = ["class", "labeled", "accepted", "coverage", "threshold", "threshold from"]
        if val_acc:
            head.append("validation recall")
        rows = []
        for c in _classes(s):
            d = _dict(pc.get(c))
            src = d.get("threshold_source")
            text, kind = _SOURCE_BADGE.get(str(src), (str(src) if src else DASH, "neutral"))
            row: list[Any] = [
                c,
                _fint(d.get("labeled")),
                _fint(d.get("accepted")),
                _fpct(d.get("coverage")),
                _fthr(d.get("threshold")),
                _badge(text, kind),
            ]
            if val_acc:
                row.append(_fpct(val_acc.get(c)))
            rows.append(row)
        parts.append(_table(head, rows, num={1, 2, 3, 4, 6}))
    if v:
        parts.append("<h3>Calibration on the validation split</h3>")
        parts.append(
            _kv(
                [
                    ("Validation items", _fint(v.get("n"))),
                    ("Accuracy (top-1)", _fpct(v.get("accuracy"))),
                    ("Loss", _ff(v.get("loss"))),
                    ("ECE before calibration", _ff(v.get("ece_before"))),
                    ("ECE after calibration", _ff(v.get("ece_after"))),
                ]
            )
        )
        plots = [
            _plot("reliability diagram", _plot_reliability, s),
            _plot("coverage vs precision", _plot_coverage_precision, s),
        ]
        plots = [p for p in plots if p]
        if plots:
            parts.append(f'<div class="grid2">{"".join(plots)}</div>')
    elif qc or pc:
        parts.append('<p class="note">No validation data in this summary.</p>')
    if not parts:
        return ""
    return _section("trust", "Trust: calibration and thresholds", "".join(parts))


def _sec_distributions(s: Mapping[str, Any]) -> str:
    """Class balance and per-class confidence histograms."""
    body = _plot("class distribution", _plot_classes, s) + _plot(
        "confidence histograms", _plot_histograms, s
    )
    if not body:
        return ""
    return _section("distributions", "Distributions", body)


def _split_stratum(key: str) -> tuple[str, str]:
    """``"<label>|<lo>-<hi>"`` -> (label, "lo–hi"); the label itself may contain '|'."""
    label, sep, rng = key.rpartition("|")
    return (label, rng.replace("-", "–")) if sep else (key, "")


def _sec_review(s: Mapping[str, Any]) -> str:
    """Review sample size, allocation over strata, files to hand to reviewers."""
    r = s.get("review")
    if not isinstance(r, Mapping):
        return ""
    parts = [
        _kv(
            [
                ("Sample size", _fint(r.get("size"))),
                ("Requested", _fint(r.get("requested")) if "requested" in r else None),
                ("Strata with reviews", _fint(r.get("strata")) if "strata" in r else None),
                ("Allocation", r.get("allocation_method")),
                ("Seed", r.get("seed")),
                (
                    "Most-uncertain items listed",
                    _fint(r.get("uncertain")) if "uncertain" in r else None,
                ),
            ]
        )
    ]
    files = _dict(r.get("files"))
    if files:
        parts.append("<h3>Files for reviewers</h3>")
        parts.append(
            _table(
                ["file", "location"],
                [(k, _Html(f"<code>{_e(v)}</code>")) for k, v in files.items()],
            )
        )
    alloc = _dict(r.get("allocation"))
    pops = _dict(s.get("strata"))
    order = {c: i for i, c in enumerate(_classes(s))}

    def by_class(k: Any) -> tuple[int, str, str]:
        label, rng = _split_stratum(str(k))
        return order.get(label, len(order)), label, rng

    keys = sorted(set(alloc) | set(pops), key=by_class)
    if keys:
        parts.append("<h3>Allocation over strata (predicted class × confidence bin)</h3>")
        note = ""
        if len(keys) > MAX_TABLE_ROWS:
            note = (
                f'<p class="note">Showing {MAX_TABLE_ROWS} of {len(keys)} strata (most '
                "reviews first).</p>"
            )
            keys = sorted(keys, key=lambda k: -(_int(alloc.get(k)) or 0))[:MAX_TABLE_ROWS]
        rows = []
        for k in keys:
            label, rng = _split_stratum(str(k))
            n, pop = _int(alloc.get(k)), _int(pops.get(k))
            rows.append(
                (label, rng, _fint(pop), _fint(n or 0), _fpct(_ratio(n, pop)) if n else DASH)
            )
        parts.append(
            _table(["class", "confidence", "population", "reviews", "sampled"], rows, num={2, 3, 4})
        )
        parts.append(note)
        parts.append(
            '<p class="note">Each stratum is sampled at random, so estimates weight '
            "its reviews by population / reviews; low-confidence strata get more "
            "reviews under error-weighted allocation.</p>"
        )
    return _section("review", "Review sample", "".join(parts))


def _sec_evaluation(s: Mapping[str, Any]) -> str:
    """Accuracy/precision estimates from the reviewed sample, and calibration flags."""
    ev = s.get("evaluation")
    demo = s.get("demo")
    parts = []
    target = _num(_dict(s.get("qc")).get("target_precision"))
    if isinstance(ev, Mapping):
        rows = []
        method = level = None
        for key, name, est in _eval_rows(ev):
            method = method or est.get("method")
            level = level or _num(est.get("confidence_level"))
            verdict, kind = _verdict(est, target) if key == "accepted" else ("", "neutral")
            rows.append(
                (
                    name,
                    _ff(est.get("point")),
                    _ci(est),
                    _fint(est.get("n_reviewed")),
                    _fint(est.get("population")),
                    _fint(est.get("uncovered_population"))
                    if "uncovered_population" in est
                    else DASH,
                    _badge(verdict, kind) if verdict else "",
                )
            )
        if rows:
            ci_head = f"{level:.0%} CI" if level else "CI"
            parts.append(
                _table(
                    ["estimate", "point", ci_head, "reviewed", "population", "not covered", ""],
                    rows,
                    num={1, 2, 3, 4, 5},
                )
            )
            bits = []
            if method:
                bits.append(f"Method: <code>{_e(method)}</code>.")
            if ev.get("n_reviewed") is not None:
                bits.append(f"{_e(_fint(ev.get('n_reviewed')))} items reviewed in total.")
            bits.append(
                "'Not covered' counts items in strata that received no reviews; "
                "estimates describe the reviewed strata only."
            )
            parts.append(f'<p class="note">{" ".join(bits)}</p>')
        parts.append(_plot("evaluation estimates", _plot_evaluation, s))
        flags = [f for f in _list(ev.get("flags")) if isinstance(f, Mapping)]
        if flags:
            parts.append("<h3>Strata where confidence disagrees with reviews</h3>")
            frows = []
            for f in flags[:MAX_TABLE_ROWS]:
                obs = f.get("observed", f.get("accuracy"))
                exp = f.get("expected", f.get("mean_confidence"))
                direction = f.get("direction")
                frows.append(
                    (
                        f.get("stratum"),
                        _fint(f.get("n_reviewed")),
                        _ff(obs),
                        _ci(f),
                        _ff(exp),
                        _badge(str(direction), "bad" if direction == "overconfident" else "warn")
                        if direction
                        else DASH,
                    )
                )
            parts.append(
                _table(
                    [
                        "stratum",
                        "reviewed",
                        "observed accuracy",
                        "CI",
                        "mean confidence",
                        "direction",
                    ],
                    frows,
                    num={1, 2, 3, 4},
                )
            )
        elif "flags" in ev:
            parts.append(
                '<p class="note">No stratum\'s reviewed accuracy contradicts its confidence.</p>'
            )
    if isinstance(demo, Mapping) and demo:
        parts.append("<h3>Self-graded against known truth (demo only)</h3>")
        names = {
            "accuracy_all": "Accuracy, all labels",
            "accuracy_accepted": "Accuracy, accepted labels",
            "n_truth": "Items with known truth",
        }
        rows = []
        for k, val in demo.items():
            if isinstance(val, Mapping | list | tuple):
                continue
            if k.startswith("n_") or isinstance(val, int):
                text = _fint(val) if _num(val) is not None else str(val)
            elif _num(val) is not None:
                text = _ff(val, 3)
            else:
                text = DASH if val is None else str(val)
            rows.append((names.get(k, k.replace("_", " ")), text))
        parts.append(_kv(rows))
    if not parts:
        return ""
    return _section("evaluation", "Evaluation", "".join(parts))


def _sec_errors(s: Mapping[str, Any]) -> str:
    """Failure counts per stage and a few examples (ids and messages are user data)."""
    counts = _dict(s.get("counts"))
    by_stage = {str(k): _int(v) or 0 for k, v in _dict(s.get("errors_by_stage")).items()}
    examples = [x for x in _list(s.get("error_examples")) if isinstance(x, Mapping)]
    total = _int(counts.get("errors"))
    if not total and not any(by_stage.values()) and not examples:
        return _section("errors", "Errors", "<p>No items failed.</p>")
    parts = [_plot("errors by stage", _plot_errors, s)]
    if by_stage:
        n_in = counts.get("input")
        parts.append(
            _table(
                ["stage", "failed items", "share of input"],
                [
                    (k, _fint(n), _fpct(_ratio(n, n_in), 2))
                    for k, n in sorted(by_stage.items(), key=lambda kv: -kv[1])
                ],
                num={1, 2},
            )
        )
    if examples:
        parts.append("<h3>Examples</h3>")
        rows = []
        for x in examples[:MAX_TABLE_ROWS]:
            msg = str(x.get("error") if x.get("error") is not None else "")
            if len(msg) > 500:
                msg = msg[:500] + " …"
            rows.append(
                (
                    _Html(f"<code>{_e(x.get('item_id'))}</code>"),
                    x.get("stage"),
                    _Html(f"<code>{_e(msg)}</code>"),
                )
            )
        parts.append(_table(["item id", "stage", "error"], rows, col_class={0: "id", 2: "msg"}))
        parts.append(
            '<p class="note">A sample only; every failure is listed in the run\'s '
            "<code>errors/</code> parquet files.</p>"
        )
    return _section("errors", "Errors", "".join(parts))


def _sec_run(s: Mapping[str, Any]) -> str:
    """Provenance, timings and resources, for whoever reruns or debugs the job."""
    inp, outp = _dict(s.get("input")), _dict(s.get("output"))
    classes = _list(s.get("classes"))
    parts = [
        _kv(
            [
                ("Run id", _code(s.get("run_id"))),
                ("Drop", s.get("drop")),
                ("Model version", _code(s.get("model_version"))),
                ("Pseudo-labels in training", _dict(s.get("pseudo_labels")).get("line")),
                ("Architecture", s.get("arch")),
                ("Modality", s.get("modality")),
                ("Classes", f"{len(classes)}: {', '.join(map(str, classes))}" if classes else None),
                ("Input", _code(inp.get("uri"))),
                ("Input kind", inp.get("kind")),
                ("Input fingerprint", _code(s.get("input_fingerprint"))),
                ("Output run directory", _code(outp.get("run_dir"))),
                ("Created at", s.get("created_at")),
                ("raylabel version", s.get("raylabel_version")),
            ]
        )
    ]
    dur = _dict(s.get("durations_s"))
    tput = _num(s.get("throughput_items_per_s"))
    if dur or tput is not None:
        parts.append("<h3>Timings</h3>")
        rows = [(k, _fsec(v)) for k, v in dur.items()]
        if tput is not None:
            rows.append(("throughput (pipeline)", f"{tput:,.1f} items/s"))
        parts.append(_table(["phase", "time"], rows, num={1}))
    pool = _dict(s.get("pool"))
    if pool:
        parts.append("<h3>Inference pool</h3>")
        parts.append(_kv([(str(k).replace("_", " "), v) for k, v in pool.items()]))
    return _section("run", "Run details", "".join(parts))


# --------------------------------------------------------------------------- entry point


def _plot_style() -> contextlib.AbstractContextManager[Any]:
    """The report's matplotlib style for the duration of a render (plain text if no mpl)."""
    try:
        import matplotlib
    except ImportError:  # plots then degrade to notes; the numbers still render
        log.warning("report: matplotlib is not installed; the report has no plots")
        return contextlib.nullcontext()
    return matplotlib.rc_context(_RC)


def render(summary: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML document (no external assets, no JS)."""
    from raylabel.audit_report import section_html as _sec_seed_audit
    from raylabel.report_watch import sec_active, sec_drift

    s = _dict(summary)
    with _plot_style():
        body = [
            _guard("header", _header, s),
            _guard("summary", _sec_summary, s),
            _guard("trust section", _sec_trust, s),
            _guard("distributions section", _sec_distributions, s),
            _guard("drift section", sec_drift, s),
            _guard("review section", _sec_review, s),
            _guard("active-learning section", sec_active, s),
            _guard("evaluation section", _sec_evaluation, s),
            _guard("errors section", _sec_errors, s),
            _guard("seed audit section", _sec_seed_audit, s),
            _guard("run details", _sec_run, s),
        ]
    title = f"raylabel report: {s.get('drop') or ''} {s.get('run_id') or ''}".strip()
    version = s.get("raylabel_version")
    footer = (
        f"<footer>Generated by raylabel{' ' + _e(version) if version else ''} from "
        "summary.json. Numbers marked — were not available.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}{footer}</main></body></html>\n"
    )
