"""One write task's statistics for a multilabel run, additive like the multiclass ones.

The keys mirror `sink.empty_stats` so the merge, the commit check, drift and the summary
read both tasks alike: `per_class` counts the items where a class is positive (the class
mix), `hist` is the histogram of each class's calibrated score over every item, and the
review strata are `raylabel.stats.multilabel_sampling`'s. Multilabel adds each class's
undecided count and the label-set counts (`LabelSetCounts`: cardinality, co-occurrence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylabel.stats import multilabel_sampling as mls
from raylabel.stats.multilabel_counts import LabelSetCounts


def add_multilabel_stats(
    s: dict[str, Any], labels: pa.Table, classes: list[str], bin_edges: list[float], bins: int
) -> None:
    """Fill `s` (an `empty_stats`) from one block of MULTILABEL_SCHEMA rows."""
    k = len(classes)
    counts = LabelSetCounts(classes)
    if labels.num_rows:
        counts.add_table(labels)  # vectorised: the per-class counts below are read off it
    s["label_sets"] = counts.to_json()
    s["undecided_per_class"] = dict(zip(classes, counts.undecided[0].tolist(), strict=True))
    if not labels.num_rows:
        return
    s["accepted"] = counts.accepted
    s["per_class"] = dict(zip(classes, counts.positive[0].tolist(), strict=True))
    s["accepted_per_class"] = dict(zip(classes, counts.positive[1].tolist(), strict=True))
    scores = np.asarray(labels.column("scores").combine_chunks().flatten()).reshape(-1, k)
    hist_bin = np.minimum((scores * bins).astype(int), bins - 1)
    for ci, c in enumerate(classes):
        s["hist"][c] = np.bincount(hist_bin[:, ci], minlength=bins).tolist()
    acc = pc.fill_null(labels.column("accepted"), False).to_numpy(zero_copy_only=False)
    edges = mls.margin_edges(bin_edges)
    s["strata"] = mls.strata_counts(labels, edges)
    accepted_rows = labels.filter(pa.array(acc.astype(bool)))
    s["accepted_strata"] = mls.strata_counts(accepted_rows, edges) if accepted_rows.num_rows else {}


def merge_multilabel(out: dict[str, Any], part: dict[str, Any]) -> None:
    """Add a task's multilabel-only statistics into `out` (the other keys merge as usual)."""
    if "undecided_per_class" not in part:
        return
    und = out.setdefault("undecided_per_class", {})
    for c, v in part["undecided_per_class"].items():
        und[c] = und.get(c, 0) + v
    theirs = LabelSetCounts.from_json(part["label_sets"])
    mine = out.get("label_sets")
    out["label_sets"] = (
        theirs if mine is None else LabelSetCounts.from_json(mine).merge(theirs)
    ).to_json()
