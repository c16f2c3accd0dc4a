"""Reviews of a multilabel run: one label *set* per item, from a CSV or Label Studio (no Ray).

CSV: ``item_id,true_labels`` (or ``true_label``), the classes joined by
``seed.label_separator``; an empty cell is an item not yet reviewed (as for multiclass
reviews, so a blank template reviews nothing) and ``(none)`` an item with no class.
Label Studio (file export or the project itself): every choice of an annotator's last
non-cancelled annotation; an annotation submitted with no choice is an item with no class.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import pyarrow as pa

from raylabel.review.labelstudio import (
    MergedReviews,
    annotations_by_annotator,
    load_review_file,
    refuse_unknown_ids,
)

#: a CSV cell saying "reviewed: no class applies" (an empty cell is "not reviewed")
NO_CLASS = "(none)"
TRUTH_COL = "true_labels"


def _split(cell: str, separator: str) -> list[str]:
    """The classes of one CSV cell: `separator`-joined, spaces around each stripped."""
    if cell == NO_CLASS:
        return []
    return sorted({p.strip() for p in cell.split(separator) if p.strip()})


def _parse_csv(text: str, label: str, separator: str) -> list[tuple[str, list[str]]]:
    """(item_id, classes) pairs; rows with an empty cell are not reviewed."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    truth = TRUTH_COL if TRUTH_COL in header else "true_label"
    for col in ("item_id", truth):
        if col not in header:
            raise ValueError(f"{label}: CSV header lacks column {col!r} (found {header})")
    out = []
    for row in reader:
        if None in row:
            line = reader.line_num
            raise ValueError(f"{label}: row at line {line} has more fields than the header")
        item_id, cell = (row.get("item_id") or "").strip(), (row.get(truth) or "").strip()
        if not item_id:
            if not cell and not any((v or "").strip() for v in row.values()):
                continue  # blank line
            raise ValueError(f"{label}: row at line {reader.line_num} has no item_id")
        if cell:
            out.append((item_id, _split(cell, separator)))
    return out


def _choices(annotation: dict, where: str) -> list[str]:
    """Every class an annotation picked (none: it says no class applies)."""
    result = annotation.get("result") or []
    if not isinstance(result, list):
        raise ValueError(f"{where}: annotation 'result' is not a list")
    picked: set[str] = set()
    for r in result:
        value = r.get("value") if isinstance(r, dict) else None
        if isinstance(value, dict) and "choices" in value:
            choices = value["choices"]
            if not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
                raise ValueError(f"{where}: 'choices' is not a list of strings")
            picked.update(choices)
    return sorted(picked)


def _parse_ls_json(text: str, label: str) -> list[tuple[str, list[str]]]:
    """(item_id, classes) from a Label Studio export: one review per annotator of a task."""
    return [
        (item_id, _choices(annotation, where))
        for item_id, annotation, where in annotations_by_annotator(text, label)
    ]


def _table(pairs: Sequence[tuple[str, Sequence[str]]]) -> pa.Table:
    return pa.table(
        {
            "item_id": pa.array([p[0] for p in pairs], pa.string()),
            TRUTH_COL: pa.array([list(p[1]) for p in pairs], pa.list_(pa.string())),
        }
    )


def parse_multilabel_reviews(
    source: str | os.PathLike | bytes, name: str | None = None, separator: str = "|"
) -> pa.Table:
    """Reviewed label sets (``item_id``, ``true_labels``: sorted list<string>, one row per
    review). Malformed input raises ValueError naming the file and row/task."""
    text, label, fmt = load_review_file(source, name)
    pairs = _parse_ls_json(text, label) if fmt == "json" else _parse_csv(text, label, separator)
    return _table(pairs)


def merge_multilabel_reviews(tables: Sequence[pa.Table]) -> MergedReviews:
    """One verdict per item: repeated reviews with the same set count once; items whose
    reviewers gave different sets are reported (each set `|`-joined) and left out."""
    sets: dict[str, list[tuple[str, ...]]] = {}
    for t in tables:
        for item_id, labels in zip(
            t.column("item_id").to_pylist(), t.column(TRUTH_COL).to_pylist(), strict=True
        ):
            sets.setdefault(item_id, []).append(tuple(sorted(set(labels or []))))
    agreed = {i: list(s[0]) for i, s in sets.items() if len(set(s)) == 1}
    return MergedReviews(
        _table(list(agreed.items())),
        repeats=sum(len(s) - 1 for i, s in sets.items() if i in agreed),
        disagreements={
            i: sorted({"|".join(x) for x in s}) for i, s in sets.items() if i not in agreed
        },
    )


def validate_multilabel_reviews(
    reviews: pa.Table, sample_ids: set[str], classes: Sequence[str]
) -> None:
    """Refuse reviews of items sent to no reviewer or naming a class the model lacks."""
    ids = refuse_unknown_ids(reviews, sample_ids)
    known = set(classes)
    bad = [
        (i, c)
        for i, labels in zip(ids, reviews.column(TRUTH_COL).to_pylist(), strict=True)
        for c in labels or []
        if c not in known
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} review(s) use a class not in the model's classes, "
            f"first: {bad[0][1]!r} (item_id {bad[0][0]!r})"
        )
