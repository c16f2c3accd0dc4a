"""The report kit: value formatting and HTML building blocks every page and section shares.

The bottom of ``raylabel.report``: it imports nothing from the package, and every other
module builds its HTML from these public names. Values come from summary.json and may be
missing, None, NaN or of the wrong type; every helper here degrades to "—" (or an empty
mapping/list) instead of raising, and every piece of text is escaped unless it is
:class:`Html` already.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

DASH = "—"
#: Most rows in the long tables (strata allocation, error examples).
MAX_TABLE_ROWS = 60

#: The one stylesheet of every page, inlined so a report needs no assets.
CSS = """
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


class Html(str):
    """Marks markup built here as safe, so tables and key/value rows do not escape it again."""


def e(x: Any) -> str:
    """Ids, paths and error messages come from the input, so no text reaches a page unescaped."""
    return html.escape("" if x is None else str(x), quote=True)


def num(x: Any) -> float | None:
    """Any summary value may be missing, NaN or a string; this gives a finite float or None."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def to_int(x: Any) -> int | None:
    """Counts read as ints even when JSON stored them as floats (None when unusable)."""
    v = num(x)
    return None if v is None else round(v)


def as_dict(x: Any) -> Mapping[str, Any]:
    """Nested summary blocks may be absent or malformed; an empty mapping keeps lookups safe."""
    return x if isinstance(x, Mapping) else {}


def as_list(x: Any) -> list[Any]:
    """Summary lists may be absent or malformed; an empty list keeps iteration safe."""
    return list(x) if isinstance(x, list | tuple) else []


def fint(x: Any) -> str:
    """Counts read best with thousands separators, and "—" when unknown."""
    v = to_int(x)
    return DASH if v is None else f"{v:,}"


def fpct(x: Any, digits: int = 1) -> str:
    """Shares (coverage, error rates) read best as percentages, and "—" when unknown."""
    v = num(x)
    return DASH if v is None else f"{100 * v:.{digits}f}%"


def ff(x: Any, digits: int = 3) -> str:
    """Scores (ECE, PSI, bounds) compare best at a fixed number of decimals."""
    v = num(x)
    return DASH if v is None else f"{v:.{digits}f}"


def fsec(x: Any) -> str:
    """Phase timings span seconds to hours; each reads best in its own unit."""
    v = num(x)
    if v is None:
        return DASH
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.2f} h"


def fthr(x: Any) -> str:
    """A threshold above 1.0 means nothing is accepted, which a reader must see as "never"."""
    v = num(x)
    if v is None:
        return DASH
    return f"never ({v:.2f})" if v > 1.0 else f"{v:.3f}"


def ratio(a: Any, b: Any) -> float | None:
    """Shares of possibly missing counts, without dividing by zero or by None."""
    x, y = num(a), num(b)
    return None if x is None or not y else x / y


def ci(est: Mapping[str, Any]) -> str:
    """Every estimate is shown with its interval, as ``lo – hi`` (or "—")."""
    lo, hi = num(est.get("lower")), num(est.get("upper"))
    if lo is None or hi is None:
        return DASH
    return f"{lo:.3f} – {hi:.3f}"


def class_names(s: Mapping[str, Any]) -> list[str]:
    """Tables and plots list classes in the summary's order, plus any only per-class data names."""
    out: list[str] = [str(c) for c in as_list(s.get("classes"))]
    extra = list(as_dict(s.get("per_class"))) + list(
        as_dict(as_dict(s.get("confidence_histogram")).get("per_class"))
    )
    for c in extra:
        if str(c) not in out:
            out.append(str(c))
    return out


# --------------------------------------------------------------------------- html bits


def code(v: Any) -> Html | None:
    """Ids and paths read (and copy) best in monospace; None when missing so :func:`kv` skips it."""
    return None if v in (None, "") else Html(f"<code>{e(v)}</code>")


def badge(text: str, kind: str) -> Html:
    """Verdicts need to stand out at a glance; kind is ok / warn / bad / neutral."""
    return Html(f'<span class="badge {kind}">{e(text)}</span>')


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[Any]],
    num: Iterable[int] = (),
    col_class: Mapping[int, str] | None = None,
    notes: Mapping[int, str] | None = None,
) -> str:
    """Every tabular part of a page escapes cells and aligns numbers the same way."""
    # Cells are escaped unless Html; `num` columns are right-aligned; `col_class` adds a CSS
    # class to every cell of a column (e.g. how it may wrap); `notes` maps a row's index to
    # a line of text shown under that row, across all columns.
    numeric = set(num)
    extra = dict(col_class or {})
    below = dict(notes or {})

    def attr(i: int) -> str:
        names = " ".join(n for n in ("num" if i in numeric else "", extra.get(i, "")) if n)
        return f' class="{names}"' if names else ""

    out = ["<table><thead><tr>"]
    out.extend(f"<th{attr(i)}>{e(h)}</th>" for i, h in enumerate(head))
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, Html) else e(cell)
            out.append(f"<td{attr(i)}>{text}</td>")
        out.append("</tr>")
        if below.get(r):
            out.append(f'<tr><td colspan="{len(head)}" class="note">{e(below[r])}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def kv(rows: Iterable[tuple[str, Any]]) -> str:
    """Facts about a run read best as key/value rows; rows whose value is None are left out."""
    body = []
    for k, v in rows:
        if v is None:
            continue
        text = v if isinstance(v, Html) else e(v)
        body.append(f"<tr><th>{e(k)}</th><td>{text}</td></tr>")
    return f'<table class="kv"><tbody>{"".join(body)}</tbody></table>' if body else ""


def card(key: str, value: str, sub: str = "", kind: str = "") -> str:
    """The headline numbers a reader sees first, one card each."""
    sub_html = f'<div class="s">{e(sub)}</div>' if sub else ""
    return (
        f'<div class="card {kind}"><div class="k">{e(key)}</div>'
        f'<div class="v">{e(value)}</div>{sub_html}</div>'
    )


def section(sid: str, title: str, body: str) -> str:
    """Every top-level part of a page gets the same heading and an anchor to link to."""
    return f'<section id="{e(sid)}"><h2>{e(title)}</h2>{body}</section>'


def guard(what: str, fn: Callable[..., str], *args: Any) -> str:
    """The report is written before a run commits, so a failing section must become a note."""
    try:
        return fn(*args)
    except Exception as exc:
        log.warning("report: %s could not be rendered", what, exc_info=True)
        return f'<p class="note">({e(what)} unavailable: {e(type(exc).__name__)}: {e(exc)})</p>'


# --------------------------------------------------------------------------- estimates


def verdict(est: Mapping[str, Any], target: float | None) -> tuple[str, str]:
    """The headline and the evaluation table must judge an estimate against the target alike."""
    p, lo, hi = num(est.get("point")), num(est.get("lower")), num(est.get("upper"))
    if p is None or target is None:
        return "no reviews" if p is None else "", "neutral"
    if lo is not None and lo >= target:
        return "meets target", "ok"
    if hi is not None and hi < target:
        return "below target", "bad"
    return "inconclusive", "warn"


def eval_rows(ev: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """The evaluation table and its plot must list the same estimates in the same order."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    if isinstance(ev.get("overall"), Mapping):
        rows.append(("overall", "overall accuracy (all labels)", ev["overall"]))
    if isinstance(ev.get("accepted"), Mapping):
        rows.append(("accepted", "accepted-label precision", ev["accepted"]))
    for c, est in as_dict(ev.get("per_class")).items():
        if isinstance(est, Mapping):
            rows.append((f"class:{c}", f"class {c}: precision", est))
    return rows
