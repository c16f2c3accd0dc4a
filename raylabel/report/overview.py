"""The top of the run report: title, headline numbers and the plain-language findings a
reader should see before any plot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report.kit import (
    as_dict,
    as_list,
    card,
    ci,
    class_names,
    e,
    ff,
    fint,
    fpct,
    num,
    ratio,
    section,
    to_int,
    verdict,
)

Finding = tuple[str, str]


def header(s: Mapping[str, Any]) -> str:
    """Whoever opens a report first needs to know which drop, run and model it is about."""
    bits = [
        ("drop", s.get("drop")),
        ("run", s.get("run_id")),
        ("model", s.get("model_version")),
        ("created", s.get("created_at")),
    ]
    meta = " · ".join(f"{e(k)} <b>{e(v)}</b>" for k, v in bits if v not in (None, ""))
    title = "raylabel run report"
    if s.get("drop"):
        title += f": {s['drop']}"
    return f"<header><h1>{e(title)}</h1><p class='meta'>{meta}</p></header>"


def _count_findings(s: Mapping[str, Any]) -> list[Finding]:
    """How much was accepted, what failed, and whether the counts add up."""
    counts = as_dict(s.get("counts"))
    qc = as_dict(s.get("qc"))
    out: list[Finding] = []
    n_in, labeled = to_int(counts.get("input")), to_int(counts.get("labeled"))
    errors, accepted = to_int(counts.get("errors")), to_int(counts.get("accepted"))
    target, level = num(qc.get("target_precision")), num(qc.get("confidence_level"))
    if labeled is not None and accepted is not None:
        text = (
            f"{accepted:,} of {labeled:,} labeled items "
            f"({fpct(ratio(accepted, labeled))}) were auto-accepted"
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
                f"{errors:,} items failed ({fpct(ratio(errors, n_in), 2)} of input); see Errors.",
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
    return out


def _threshold_findings(s: Mapping[str, Any]) -> list[Finding]:
    """Classes that accept nothing, or lean on the pooled threshold."""
    out: list[Finding] = []
    pc = as_dict(s.get("per_class"))
    never = [
        c for c in class_names(s) if as_dict(pc.get(c)).get("threshold_source") == "unreachable"
    ]
    if never:
        which = "that class" if len(never) == 1 else "those classes"
        out.append(
            (
                "warn",
                "No threshold reaches the target for "
                f"{', '.join(never)}: nothing of {which} is auto-accepted.",
            )
        )
    pooled = [c for c in class_names(s) if as_dict(pc.get(c)).get("threshold_source") == "global"]
    if pooled:
        out.append(
            (
                "warn",
                f"Too little validation evidence for {', '.join(pooled)}: "
                "the pooled global threshold is used.",
            )
        )
    return out


def _quality_findings(s: Mapping[str, Any]) -> list[Finding]:
    """Calibration error, the reviewed precision against the target, and disagreeing strata."""
    out: list[Finding] = []
    target = num(as_dict(s.get("qc")).get("target_precision"))
    v = as_dict(s.get("validation"))
    before, after = num(v.get("ece_before")), num(v.get("ece_after"))
    if after is not None:
        text = f"Calibration error (ECE) on validation: {after:.3f} after temperature scaling"
        if before is not None:
            text += f" (was {before:.3f})"
        out.append(("ok" if after <= 0.05 else "warn", text + "."))
    ev = as_dict(s.get("evaluation"))
    acc = ev.get("accepted")
    if isinstance(acc, Mapping) and num(acc.get("point")) is not None:
        text_v, kind = verdict(acc, target)
        text = (
            f"Reviewed sample: accepted-label precision {ff(acc.get('point'))} "
            f"(CI {ci(acc)}, {fint(acc.get('n_reviewed'))} reviews)"
        )
        if text_v:
            text += f": {text_v}"
        out.append((kind if kind != "neutral" else "warn", text + "."))
    flags = as_list(ev.get("flags"))
    if flags:
        out.append(
            (
                "warn",
                f"{len(flags)} reviewed strata disagree with their confidence (see Evaluation).",
            )
        )
    return out


def findings(s: Mapping[str, Any]) -> list[Finding]:
    """A reader should get the verdict in plain words, as (kind, text), before any plot."""
    return _count_findings(s) + _threshold_findings(s) + _quality_findings(s)


def _cards(s: Mapping[str, Any]) -> list[str]:
    """One card per headline number; the optional ones only when the summary has them."""
    counts = as_dict(s.get("counts"))
    qc = as_dict(s.get("qc"))
    n_in = counts.get("input")
    labeled = counts.get("labeled")
    errors = to_int(counts.get("errors"))
    cov = num(as_dict(s.get("coverage")).get("overall"))
    if cov is None:
        cov = ratio(counts.get("accepted"), labeled)
    cards = [
        card("Items in", fint(n_in)),
        card("Labeled", fint(labeled), f"{fpct(ratio(labeled, n_in))} of input"),
        card(
            "Errors",
            fint(errors),
            f"{fpct(ratio(errors, n_in), 2)} of input",
            "bad" if errors else "",
        ),
        card(
            "Auto-accepted",
            fint(counts.get("accepted")),
            f"coverage {fpct(cov)}",
            "ok" if counts.get("accepted") else "warn",
        ),
        card(
            "Needs review",
            fint(counts.get("needs_review")),
            f"{fpct(ratio(counts.get('needs_review'), labeled))} of labeled",
        ),
    ]
    if "duplicates" in counts:
        cards.append(card("Duplicates", fint(counts.get("duplicates")), "in the input"))
    target = num(qc.get("target_precision"))
    if target is not None:
        level = num(qc.get("confidence_level"))
        sub = f"{level:.0%} lower bound" if level is not None else ""
        cards.append(card("Target precision", f"{target:g}", sub))
    acc = as_dict(as_dict(s.get("evaluation")).get("accepted"))
    if num(acc.get("point")) is not None:
        _, kind = verdict(acc, target)
        cards.append(
            card(
                "Accepted precision",
                ff(acc.get("point")),
                f"review est., CI {ci(acc)}",
                kind if kind != "neutral" else "",
            )
        )
    return cards


def sec_summary(s: Mapping[str, Any]) -> str:
    """The numbers that decide whether to trust a run belong above everything else."""
    items = "".join(f'<li class="{k}">{e(t)}</li>' for k, t in findings(s))
    body = f'<div class="cards">{"".join(_cards(s))}</div>'
    if items:
        body += f'<ul class="findings">{items}</ul>'
    return section("summary", "Summary", body)
