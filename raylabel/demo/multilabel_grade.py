"""Grading a multi-label run against the kept truth: pure functions, tables in, dict out.

Why a module of its own: what the multi-label demo claims (every item accounted for, the
accepted label sets as precise as `qc.target_precision` asks) is decided here, without Ray
or storage, so it is tested on hand-made tables with known answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

# How many missing / unexpected item_ids a grade lists by name (the counts are complete).
_LIST_AT_MOST = 20


def _ratio(num: int, den: int) -> float | None:
    """num / den, or None when nothing was counted (JSON-friendly, unlike NaN)."""
    return num / den if den else None


def _accounting(truth_ids: list[str], labeled_ids: list[str], error_ids: list[str]) -> dict:
    """Every drop item in exactly one of labels/ and errors/, and nothing else there."""
    expected = set(truth_ids)
    seen = Counter(labeled_ids) + Counter(error_ids)
    missing = sorted(expected - set(seen))
    unexpected = sorted(set(seen) - expected)
    repeated = sorted(i for i, n in seen.items() if n > 1)
    return {
        "n_input": len(expected),
        "n_labeled": len(labeled_ids),
        "n_errors": len(error_ids),
        "n_missing": len(missing),
        "missing": missing[:_LIST_AT_MOST],
        "n_unexpected": len(unexpected),
        "unexpected": unexpected[:_LIST_AT_MOST],
        "n_repeated": len(repeated),
        "repeated": repeated[:_LIST_AT_MOST],
        "all_accounted": not missing and not unexpected and not repeated,
    }


def _per_class(
    pairs: list[tuple[set[str], set[str]]], classes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Precision and recall of each class among the graded rows (predicted, true) pairs."""
    out: dict[str, dict[str, Any]] = {}
    for c in classes:
        tp = sum(c in p and c in t for p, t in pairs)
        n_pred = sum(c in p for p, _ in pairs)
        n_true = sum(c in t for _, t in pairs)
        out[c] = {
            "precision": _ratio(tp, n_pred),
            "recall": _ratio(tp, n_true),
            "n_predicted": n_pred,
            "n_true": n_true,
        }
    return out


def grade_multilabel(
    truth: pa.Table,
    labels: pa.Table,
    errors: pa.Table,
    classes: Sequence[str],
    target_precision: float,
) -> dict[str, Any]:
    """Measures what review can only estimate: a multi-label run's real quality.

    `truth` has ``item_id, labels`` (null labels: an unreadable item with no truth);
    `labels` has ``item_id, labels, accepted`` (MULTILABEL_SCHEMA); `errors` has
    ``item_id``. Graded are the accepted rows whose truth is known: exact-set accuracy,
    micro precision and recall of their positives, and per class precision and recall.
    """
    truth_ids = [str(i) for i in truth.column("item_id").to_pylist()]
    true_of = {
        i: set(t)
        for i, t in zip(truth_ids, truth.column("labels").to_pylist(), strict=True)
        if t is not None
    }
    ids = [str(i) for i in labels.column("item_id").to_pylist()]
    predicted = labels.column("labels").to_pylist()
    accepted = labels.column("accepted").to_pylist()
    g = _accounting(truth_ids, ids, [str(i) for i in errors.column("item_id").to_pylist()])
    known = [(i, set(p or []), bool(a)) for i, p, a in zip(ids, predicted, accepted, strict=True)]
    known = [k for k in known if k[0] in true_of]
    pairs = [(p, true_of[i]) for i, p, a in known if a]
    tp = sum(len(p & t) for p, t in pairs)
    exact = _ratio(sum(p == t for p, t in pairs), len(pairs))
    micro_p = _ratio(tp, sum(len(p) for p, _ in pairs))
    g.update(
        {
            "n_graded": len(known),
            "n_accepted": len(pairs),
            "coverage": _ratio(len(pairs), len(known)),
            "exact_set_accuracy": exact,
            "micro_precision": micro_p,
            "micro_recall": _ratio(tp, sum(len(t) for _, t in pairs)),
            "per_class": _per_class(pairs, classes),
            "target_precision": target_precision,
            "exact_meets_target": exact is not None and exact >= target_precision,
            "micro_precision_meets_target": micro_p is not None and micro_p >= target_precision,
        }
    )
    return g


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def grade_lines(g: dict[str, Any]) -> list[str]:
    """The report's comparison with the truth, as the demo prints it."""
    ok = {True: "meets", False: "BELOW"}
    lines = [
        "",
        "graded against the truth kept aside (the pipeline never read it):",
        f"  items in:                  {g['n_input']}  -> {g['n_labeled']} labeled + "
        f"{g['n_errors']} errors ("
        + ("every item accounted for" if g["all_accounted"] else
           f"{g['n_missing']} missing, {g['n_unexpected']} unexpected, "
           f"{g['n_repeated']} repeated")
        + ")",
        f"  share accepted (coverage): {_pct(g['coverage'])}",
        f"  exact-set accuracy:        {_pct(g['exact_set_accuracy'])}   "
        f"({ok[g['exact_meets_target']]} target {g['target_precision']:.0%})",
        f"  micro precision:           {_pct(g['micro_precision'])}   "
        f"({ok[g['micro_precision_meets_target']]} target {g['target_precision']:.0%})",
        f"  micro recall:              {_pct(g['micro_recall'])}",
        "  per class (accepted rows): precision / recall (predicted, true)",
    ]  # fmt: skip
    for c, m in g["per_class"].items():
        lines.append(
            f"    {c:<12} {_pct(m['precision']):>6} / {_pct(m['recall']):>6}  "
            f"({m['n_predicted']}, {m['n_true']})"
        )
    return lines
