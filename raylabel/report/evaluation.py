"""The evaluation section of the run report: what the reviewed sample says about accuracy
and accepted-label precision, which strata contradict their confidence, and (demo runs
only) the grade against known truth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report import plots
from raylabel.report.kit import (
    DASH,
    MAX_TABLE_ROWS,
    as_dict,
    as_list,
    badge,
    ci,
    e,
    eval_rows,
    ff,
    fint,
    kv,
    num,
    section,
    table,
    verdict,
)
from raylabel.report.plots import C_ACCEPTED, C_MUTED, C_TARGET, figure, plot

_DEMO_NAMES = {
    "accuracy_all": "Accuracy, all labels",
    "accuracy_accepted": "Accuracy, accepted labels",
    "n_truth": "Items with known truth",
}


def _estimates_part(ev: Mapping[str, Any], target: float | None) -> list[str]:
    """The estimates table and the note on how they were computed."""
    rows = []
    method = level = None
    for key, name, est in eval_rows(ev):
        method = method or est.get("method")
        level = level or num(est.get("confidence_level"))
        text, kind = verdict(est, target) if key == "accepted" else ("", "neutral")
        rows.append(
            (
                name,
                ff(est.get("point")),
                ci(est),
                fint(est.get("n_reviewed")),
                fint(est.get("population")),
                fint(est.get("uncovered_population")) if "uncovered_population" in est else DASH,
                badge(text, kind) if text else "",
            )
        )
    if not rows:
        return []
    ci_head = f"{level:.0%} CI" if level else "CI"
    parts = [
        table(
            ["estimate", "point", ci_head, "reviewed", "population", "not covered", ""],
            rows,
            num={1, 2, 3, 4, 5},
        )
    ]
    bits = []
    if method:
        bits.append(f"Method: <code>{e(method)}</code>.")
    if ev.get("n_reviewed") is not None:
        bits.append(f"{e(fint(ev.get('n_reviewed')))} items reviewed in total.")
    bits.append(
        "'Not covered' counts items in strata that received no reviews; "
        "estimates describe the reviewed strata only."
    )
    parts.append(f'<p class="note">{" ".join(bits)}</p>')
    return parts


def _flags_part(ev: Mapping[str, Any]) -> list[str]:
    """Strata whose reviewed accuracy contradicts their confidence (or a note that none do)."""
    flags = [f for f in as_list(ev.get("flags")) if isinstance(f, Mapping)]
    if not flags:
        if "flags" in ev:
            return [
                '<p class="note">No stratum\'s reviewed accuracy contradicts its confidence.</p>'
            ]
        return []
    rows = []
    for f in flags[:MAX_TABLE_ROWS]:
        obs = f.get("observed", f.get("accuracy"))
        exp = f.get("expected", f.get("mean_confidence"))
        direction = f.get("direction")
        rows.append(
            (
                f.get("stratum"),
                fint(f.get("n_reviewed")),
                ff(obs),
                ci(f),
                ff(exp),
                badge(str(direction), "bad" if direction == "overconfident" else "warn")
                if direction
                else DASH,
            )
        )
    head = ["stratum", "reviewed", "observed accuracy", "CI", "mean confidence", "direction"]
    return [
        "<h3>Strata where confidence disagrees with reviews</h3>",
        table(head, rows, num={1, 2, 3, 4}),
    ]


def _demo_part(demo: Mapping[str, Any]) -> list[str]:
    """Demo runs know the truth; their scalar figures are shown as a self-grade."""
    rows = []
    for k, val in demo.items():
        if isinstance(val, Mapping | list | tuple):
            continue
        if k.startswith("n_") or isinstance(val, int):
            text = fint(val) if num(val) is not None else str(val)
        elif num(val) is not None:
            text = ff(val, 3)
        else:
            text = DASH if val is None else str(val)
        rows.append((_DEMO_NAMES.get(k, k.replace("_", " ")), text))
    return ["<h3>Self-graded against known truth (demo only)</h3>", kv(rows)]


def sec_evaluation(s: Mapping[str, Any]) -> str:
    """Only reviewed items can show whether the accepted labels meet the target precision."""
    ev = s.get("evaluation")
    demo = s.get("demo")
    parts = []
    target = num(as_dict(s.get("qc")).get("target_precision"))
    if isinstance(ev, Mapping):
        parts += _estimates_part(ev, target)
        parts.append(plot("evaluation estimates", _plot_evaluation, s))
        parts += _flags_part(ev)
    if isinstance(demo, Mapping) and demo:
        parts += _demo_part(demo)
    if not parts:
        return ""
    return section("evaluation", "Evaluation", "".join(parts))


def _plot_evaluation(s: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Point estimates with confidence-interval bars vs the target precision line."""
    rows = eval_rows(as_dict(s.get("evaluation")))[: plots.MAX_PLOT_CLASSES + 2]
    if not any(num(r[2].get("point")) is not None for r in rows):
        return None
    target = num(as_dict(s.get("qc")).get("target_precision"))
    fig, axes = figure(7.5, 1.0 + 0.36 * len(rows))
    ax = axes[0][0]
    lows = [target] if target is not None else []
    for i, (key, _, est) in enumerate(rows):
        p = num(est.get("point"))
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
        lo, hi = num(est.get("lower")), num(est.get("upper"))
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
    level = num(as_dict(rows[0][2]).get("confidence_level")) if rows else None
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
