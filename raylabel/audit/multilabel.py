"""Multilabel seed audit: cleanlab's multi-label ranking over out-of-sample sigmoid probabilities.

A multilabel seed item can be wrong on any of its classes at once: a tag given that is not
there, or a tag missing that is. cleanlab's one-vs-rest reduction flags an item when any of its
classes looks wrongly tagged and scores every item's whole set; per class it also says which
tags look wrong, so a reviewer gets the tags to add and to remove, not just "this item".

A class every audited item has (or none has) gives cleanlab nothing to compare against; it is
left out of the ranking and named in audit.json (`unjudged_classes`). Rows follow
MULTILABEL_ISSUES_SCHEMA (docs/seed-audit.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel import __version__
from raylabel.audit.schemas import MULTILABEL_ISSUES_SCHEMA, UNREADABLE
from raylabel.config import Config
from raylabel.inputs.sources import SourcePlan
from raylabel.io import layout
from raylabel.stats.label_sets import multi_hot, split_set

#: A class is in an item's suggested set when its out-of-sample probability reaches this.
SUGGEST_AT = 0.5
TOP_ISSUES = 20


@dataclass
class MultilabelRanking:
    """cleanlab's verdict on each item of a multilabel seed (arrays over items, then classes)."""

    quality: (
        np.ndarray
    )  # (n,) label quality of the whole set, 0-1, low = likely wrong; NaN: unranked
    issue: np.ndarray  # (n,) bool: some class looks wrongly tagged
    wrong: np.ndarray  # (n, k) bool: this class looks wrongly tagged (flagged items only)
    judged: np.ndarray  # (k,) bool: the class has tagged and untagged items, so it was ranked


def rank_items(
    given: np.ndarray, probs: np.ndarray, method: str, rank_by: str
) -> MultilabelRanking:
    """cleanlab multi-label ranking of `given` (n x k, 0/1) against `probs` (n x k sigmoid).

    `method` is cleanlab's filter_by, `rank_by` its label-quality score. A flagged item's wrong
    classes are those cleanlab's per-class filter flags; when it flags none there (the
    `low_*` filters rank whole sets) the class the model most disagrees with at SUGGEST_AT is
    named, if any.
    """
    from cleanlab.multilabel_classification.filter import (
        find_label_issues,
        find_multilabel_issues_per_class,
    )
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    given = np.asarray(given, dtype=np.int64)
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    n, k = given.shape
    tagged = given.sum(axis=0)
    judged = (tagged > 0) & (tagged < n)
    out = MultilabelRanking(np.full(n, np.nan), np.zeros(n, bool), np.zeros((n, k), bool), judged)
    if n < 2 or not judged.any():
        return out
    g, p = given[:, judged], probs[:, judged]
    labels = [np.flatnonzero(row).tolist() for row in g]
    with warnings.catch_warnings():
        # cleanlab's own low_* path calls its deprecated multi_label entry point
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="cleanlab")
        out.issue = np.asarray(find_label_issues(labels, p, filter_by=method, n_jobs=1), bool)
        per_class = find_multilabel_issues_per_class(labels, p, filter_by=method, n_jobs=1)
        out.quality = np.asarray(get_label_quality_scores(labels, p, method=rank_by), float)
    wrong = np.asarray(per_class, bool) & out.issue[:, None]
    disagree = np.where(g == 1, 1.0 - p, p)
    differs = (p >= SUGGEST_AT) != (g == 1)
    for i in np.flatnonzero(out.issue & ~wrong.any(axis=1)):
        if differs[i].any():
            wrong[i, int(np.argmax(np.where(differs[i], disagree[i], -1.0)))] = True
    out.wrong[:, judged] = wrong
    return out


def multilabel_learning(
    cfg: Config,
    plan: SourcePlan,
    classes: list[str],
    probs: np.ndarray,
    oof_fold: np.ndarray,
    settings: dict[str, Any],
) -> tuple[pa.Table, dict[str, Any]]:
    """cleanlab over a multilabel seed's out-of-sample probabilities -> ranked table + summary
    (`settings`: the audit's reuse key, recorded in audit.json)."""
    listing = plan.listing
    assert listing is not None and plan.label_separator is not None
    ids = listing.column("item_id").to_pylist()
    uris = listing.column("uri").to_pylist() if "uri" in listing.column_names else list(ids)
    labels = listing.column("label").to_pylist()
    index = plan.label_index(classes)
    given = multi_hot(np.asarray([index[v] for v in labels], dtype=np.int64), len(classes))
    ok = ~np.isnan(probs).any(axis=1)
    n, k = given.shape
    found = rank_items(given[ok], probs[ok], cfg.audit.method, cfg.audit.rank_by)
    rk = MultilabelRanking(
        np.full(n, np.nan), np.zeros(n, bool), np.zeros((n, k), bool), found.judged
    )
    rk.quality[ok], rk.issue[ok], rk.wrong[ok] = found.quality, found.issue, found.wrong
    suggested = np.nan_to_num(probs) >= SUGGEST_AT
    tagged = given.astype(bool)
    # flagged first, then by label quality (lowest = most likely wrong); unreadable last
    order = np.lexsort((np.nan_to_num(rk.quality, nan=2.0), ~rk.issue, ~ok))
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(1, n + 1, dtype=np.int32)

    table = pa.table(
        {
            "item_id": pa.array(ids, pa.string()),
            "uri": pa.array([str(u) for u in uris], pa.string()),
            "given_labels": [split_set(v, plan.label_separator) for v in labels],
            "suggested_labels": _names(suggested, ok, classes),
            "added": _names(rk.wrong & ~tagged, ok, classes),
            "removed": _names(rk.wrong & tagged, ok, classes),
            "label_quality": pa.array(rk.quality, pa.float32(), mask=~ok),
            "is_label_issue": pa.array(rk.issue, pa.bool_()),
            "rank": pa.array(rank, pa.int32()),
            "fold": pa.array(oof_fold, pa.int32()),
            "error": pa.array([None if o else UNREADABLE for o in ok], pa.string()),
        },
        schema=MULTILABEL_ISSUES_SCHEMA,
    ).take(pa.array(order))
    return table, _summary(settings, plan, classes, tagged, suggested, ok, rk, table)


def _names(mask: np.ndarray, ok: np.ndarray, classes: list[str]) -> list[list[str] | None]:
    """Each row's marked classes by name; None for rows that were not audited."""
    rows = zip(mask, ok, strict=True)
    return [[classes[j] for j in np.flatnonzero(m)] if o else None for m, o in rows]


def _summary(
    settings: dict[str, Any],
    plan: SourcePlan,
    classes: list[str],
    tagged: np.ndarray,
    suggested: np.ndarray,
    ok: np.ndarray,
    rk: MultilabelRanking,
    table: pa.Table,
) -> dict[str, Any]:
    """audit.json of a multilabel seed: the multiclass document's keys where they carry over,
    per class the tags cleanlab would add and remove, and set-level agreement."""
    added, removed = rk.wrong & ~tagged, rk.wrong & tagged
    per_class = {
        c: {
            "items": int(tagged[:, j].sum()),
            "issues": int(rk.wrong[:, j].sum()),
            "added": int(added[:, j].sum()),
            "removed": int(removed[:, j].sum()),
        }
        for j, c in enumerate(classes)
    }
    agree = suggested[ok] == tagged[ok]
    top = table.slice(0, min(int(rk.issue.sum()), TOP_ISSUES)).to_pylist()
    keys = ("item_id", "given_labels", "suggested_labels", "added", "removed", "label_quality")
    return {
        "task": "multilabel",
        "seed": {"uri": plan.uri, "kind": plan.kind, "fingerprint": plan.fingerprint},
        "settings": settings,
        "classes": classes,
        "counts": {
            "items": len(ok),
            "audited": int(ok.sum()),
            "unreadable": int((~ok).sum()),
            "issues": int(rk.issue.sum()),
        },
        # exact set match; per tag: share of (item, class) decisions that agree
        "oos_accuracy": float(agree.all(axis=1).mean()) if ok.any() else None,
        "oos_tag_accuracy": float(agree.mean()) if ok.any() else None,
        "per_class": per_class,
        "unjudged_classes": [c for c, j in zip(classes, rk.judged, strict=True) if not j],
        "top_issues": [{key: r[key] for key in keys} for r in top],
        "created_at": layout.utc_now().isoformat(),
        "raylabel_version": __version__,
    }


def label_set(names: list[str] | None) -> str:
    """A label set as people read it: {a, b}; {} for none."""
    return "{" + ", ".join(names or []) + "}"


def summary_lines(s: dict[str, Any], out: str, reused: bool, duration_s: float) -> list[str]:
    """What `raylabel audit` prints for a multilabel seed: counts, agreement, the top issues
    with the tags to add and remove, where the files are."""
    c = s["counts"]
    acc, tag_acc = s.get("oos_accuracy"), s.get("oos_tag_accuracy")
    lines = [
        f"seed audit {'(reused) ' if reused else ''}of {c['items']} items, multilabel "
        f"({s['settings']['folds']} folds, cleanlab {s['settings']['method']}): "
        f"{c['issues']} likely label issues ({c['issues'] / max(c['audited'], 1):.1%})",
        f"out-of-sample exact-set accuracy against the given labels: {acc:.3f} "
        f"(per tag {tag_acc:.3f})"
        if acc is not None and tag_acc is not None
        else "out-of-sample accuracy: n/a",
    ]
    if c["unreadable"]:
        lines.append(f"{c['unreadable']} unreadable items were not audited")
    if s.get("unjudged_classes"):
        lines.append(f"not ranked (every or no item has it): {', '.join(s['unjudged_classes'])}")
    for row in s.get("top_issues", [])[:5]:
        change = [f"+{x}" for x in row["added"] or []] + [f"-{x}" for x in row["removed"] or []]
        lines.append(
            f"  {row['item_id']}: given {label_set(row['given_labels'])} -> suggested "
            f"{label_set(row['suggested_labels'])} ({' '.join(change) or 'no single tag'}; "
            f"quality {row['label_quality']:.3f})"
        )
    lines.append(f"output: {out}")
    lines.append(f"took {duration_s:.1f}s")
    return lines
