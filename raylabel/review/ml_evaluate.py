"""`evaluate` on a multilabel run: reviewed label sets joined to the sample, the stratified
estimates of `stats.multilabel_estimate`, and feedback rows in the feedback file's layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from raylabel.review import ml_reviews
from raylabel.review.labelstudio import MergedReviews
from raylabel.stats.multilabel_estimate import multilabel_estimates

TRUTH_COL = ml_reviews.TRUTH_COL


def verdicts(
    sources: Sequence[tuple[bytes, str]], known: set[str], classes: Sequence[str], separator: str
) -> MergedReviews:
    """One reviewed set per item from every review file; refused as `evaluate` refuses
    multiclass reviews (ids sent to no reviewer, unknown classes): ValueError."""
    merged = ml_reviews.merge_multilabel_reviews(
        [ml_reviews.parse_multilabel_reviews(data, name=name, separator=separator)
         for data, name in sources]
    )  # fmt: skip
    ml_reviews.validate_multilabel_reviews(merged.table, known, classes)
    return merged


def join_sets(table: pa.Table, merged: MergedReviews) -> pa.Table:
    """The table with ``true_labels`` (the reviewed set; null: not reviewed)."""
    truth = dict(
        zip(
            merged.table.column("item_id").to_pylist(),
            merged.table.column(TRUTH_COL).to_pylist(),
            strict=True,
        )
    )
    ids = table.column("item_id").to_pylist()
    values = [truth.get(i) for i in ids]
    return table.append_column(TRUTH_COL, pa.array(values, pa.list_(pa.string())))


def n_reviewed(table: pa.Table) -> int:
    """Rows with a reviewed set (an empty set counts: "no class" is a verdict)."""
    if TRUTH_COL not in table.column_names:
        return 0
    return table.num_rows - table.column(TRUTH_COL).null_count


def evaluation(joined: pa.Table, level: float, summary: dict[str, Any],
               classes: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """The evaluation block: ``overall``/``accepted`` are exact-set accuracy (all rows,
    accepted rows) and ``per_class`` the precision among accepted rows, so the report's
    table reads them as it reads multiclass ones; ``multilabel`` holds the rest."""
    est = multilabel_estimates(joined, classes, level, summary.get("strata"))

    def per(name: str) -> dict[str, Any]:
        return {c: e.to_json() for c, e in est[name].items()}

    overall, accepted = est["exact_all"].to_json(), est["exact_accepted"].to_json()
    return {
        "task": "multilabel",
        "n_reviewed": n_reviewed(joined),
        "confidence_level": level,
        "target_precision": summary.get("qc", {}).get("target_precision"),
        "estimates": {"overall": overall, "accepted": accepted},
        "overall": overall,
        "accepted": accepted,
        "per_class": per("precision"),
        "multilabel": {
            "overall": "exact-set accuracy of all rows (predicted positives == reviewed set)",
            "accepted": "exact-set accuracy of accepted rows",
            "micro_precision": est["micro_precision"].to_json(),
            "micro_recall": est["micro_recall"].to_json(),
            "precision": per("precision"),
            "recall": per("recall"),
            "undecided_added": per("undecided_added"),
            "undecided_added_note": "per class: share of rows where it was undecided that the "
            "reviewer made it positive",
        },
        "flags": [],
    }


def as_feedback(table: pa.Table, separator: str) -> pa.Table:
    """Reviewed sets as the feedback writer's one-string columns: ``true_label`` (the
    reviewed set) and ``label`` (the predicted positives), each `separator`-joined as a
    multilabel seed CSV holds them ("" = no class; null true_label = not reviewed)."""

    def joined(col: str) -> pa.Array:
        if col not in table.column_names:
            return pa.nulls(table.num_rows, pa.string())
        vals = table.column(col).to_pylist()
        return pa.array([None if v is None else separator.join(v) for v in vals], pa.string())

    out = table.drop_columns([c for c in ("true_label", "label") if c in table.column_names])
    return out.append_column("true_label", joined(TRUTH_COL)).append_column(
        "label", joined("labels")
    )
