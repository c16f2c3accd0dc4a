"""The seed-audit section: in the audit's own report.html and in every run report whose model
was trained with an audit (the card records it), so whoever trusts the labels sees how clean
the seed was and what was left out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raylabel.report.kit import CSS, code, e, fpct, kv, section, table

MAX_ISSUE_ROWS = 20


def section_html(s: Mapping[str, Any]) -> str:
    """Whoever trusts a run's labels should see how clean its seed was ('' without an audit)."""
    audit = s.get("seed_audit")
    if not isinstance(audit, Mapping):
        return ""
    return _section_body(audit)


def _section_body(a: Mapping[str, Any]) -> str:
    counts = a.get("counts") or {}
    st = a.get("settings") or {}
    audited = counts.get("audited") or 0
    issues = counts.get("issues")
    share = (issues / audited) if audited and issues is not None else None
    parts = [
        '<p class="note">Out-of-sample probabilities from k-fold training, then confident '
        "learning (cleanlab) ranks seed items whose given label the rest of the seed "
        "contradicts. Flagged items are candidates for relabeling, not proven errors.</p>",
        kv(
            [
                ("Seed fingerprint", code((a.get("seed") or {}).get("fingerprint"))),
                ("Audit output", code(a.get("audit_dir"))),
                ("Folds / epochs per fold", f"{st.get('folds')} / {st.get('epochs')}"),
                ("cleanlab filter / score", f"{st.get('method')} / {st.get('rank_by')}"),
                ("Items audited", f"{audited} of {counts.get('items')}"),
                ("Unreadable (not audited)", counts.get("unreadable")),
                ("Flagged as likely label issues", f"{issues} ({fpct(share)})"),
                *_accuracy_rows(a),
                ("Excluded from this model's training", a.get("excluded")),
                ("Reused a committed audit", a.get("reused")),
            ]
        ),
    ]
    known = a.get("known_answer")
    if isinstance(known, Mapping):
        parts.append("<h3>Against planted label flips</h3>")
        parts.append(kv([(str(k).replace("_", " "), v) for k, v in known.items()]))
    if a.get("task") == "multilabel":
        parts.extend(_multilabel_parts(a))
        return section("seed-audit", "Seed audit", "".join(parts))
    per_class = a.get("per_class") or {}
    if per_class:
        parts.append("<h3>Per class</h3>")
        rows = [
            (c, v.get("items"), v.get("issues"), fpct(_ratio(v.get("issues"), v.get("items"))))
            for c, v in per_class.items()
        ]
        parts.append(table(["given label", "items", "flagged", "flagged %"], rows, num={1, 2, 3}))
    pairs = a.get("pairs") or []
    if pairs:
        parts.append("<h3>Given → suggested</h3>")
        rows = [(p.get("given"), p.get("suggested"), p.get("n")) for p in pairs[:MAX_ISSUE_ROWS]]
        parts.append(table(["given", "suggested", "items"], rows, num={2}))
    top = a.get("top_issues") or []
    if top:
        parts.append(f"<h3>Most likely label errors (first {min(len(top), MAX_ISSUE_ROWS)})</h3>")
        rows = [
            (
                code(r.get("item_id")),
                r.get("given_label"),
                r.get("suggested_label"),
                f"{r['label_quality']:.3f}" if r.get("label_quality") is not None else "—",
            )
            for r in top[:MAX_ISSUE_ROWS]
        ]
        parts.append(table(["item", "given", "suggested", "label quality"], rows, num={3}))
    return section("seed-audit", "Seed audit", "".join(parts))


def _accuracy_rows(a: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if a.get("task") != "multilabel":
        return [("Out-of-sample accuracy vs given labels", fpct(a.get("oos_accuracy")))]
    return [
        ("Out-of-sample exact-set accuracy vs given labels", fpct(a.get("oos_accuracy"))),
        ("Out-of-sample per-tag agreement", fpct(a.get("oos_tag_accuracy"))),
    ]


def _multilabel_parts(a: Mapping[str, Any]) -> list[str]:
    """A multilabel seed is wrong tag by tag: per class and per item, the tags the audit would
    add and remove, and each flagged item's given set next to the set the model suggests."""
    parts = [
        '<p class="note">Multilabel: every class is judged on its own; a flagged item names '
        "the tags to add (absent, the model sees it) and to remove (given, the model does "
        "not). Suggested set: the classes with out-of-sample probability ≥ 0.5.</p>"
    ]
    unjudged = a.get("unjudged_classes") or []
    if unjudged:
        parts.append(
            f'<p class="note">Not ranked (every or no audited item has it): '
            f"{e(', '.join(unjudged))}</p>"
        )
    per_class = a.get("per_class") or {}
    if per_class:
        parts.append("<h3>Per class</h3>")
        rows = [
            (c, v.get("items"), v.get("issues"), v.get("added"), v.get("removed"))
            for c, v in per_class.items()
        ]
        head = ["class", "items tagged", "flagged", "tags to add", "tags to remove"]
        parts.append(table(head, rows, num={1, 2, 3, 4}))
    top = a.get("top_issues") or []
    if top:
        parts.append(f"<h3>Most likely label errors (first {min(len(top), MAX_ISSUE_ROWS)})</h3>")
        rows = [
            (
                code(r.get("item_id")),
                _set(r.get("given_labels")),
                _set(r.get("suggested_labels")),
                ", ".join(r.get("added") or []),
                ", ".join(r.get("removed") or []),
                f"{r['label_quality']:.3f}" if r.get("label_quality") is not None else "—",
            )
            for r in top[:MAX_ISSUE_ROWS]
        ]
        head = ["item", "given", "suggested", "add", "remove", "label quality"]
        parts.append(table(head, rows, num={5}))
    return parts


def _set(names: Any) -> str:
    return "{" + ", ".join(str(n) for n in names or []) + "}"


def _ratio(a: Any, b: Any) -> float | None:
    return (a / b) if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def render_page(summary: Mapping[str, Any]) -> str:
    """An audit is read on its own too, so it gets a report.html with the run report's look."""
    fp = (summary.get("seed") or {}).get("fingerprint") or ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>raylabel seed audit {e(fp)}</title><style>{CSS}</style></head>"
        f"<body><main>{_section_body(summary)}<footer>Generated by raylabel "
        f"{e(summary.get('raylabel_version') or '')} from audit.json.</footer></main>"
        "</body></html>\n"
    )
