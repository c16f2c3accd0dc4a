"""Review strata and queue order of a multilabel run (no Ray here).

A multilabel row has no single predicted label nor a top confidence; what says how much a
reviewer should look at it is whether it was accepted, how many classes are undecided and
how close its closest class decision came to a threshold (``margin``). Strata are

    group x margin bin,   group = "acc" | "rev" + "/u0" | "/u1" | "/u2+"  (undecided classes)

keyed like the multiclass ones (``stratum_key``: ``"rev/u1|0.00-0.05"``), so the sampling
state, allocation, draw and estimates of :mod:`raylabel.stats.sampling` apply unchanged.
Margin bins are the confidence bins turned around (``1 - edges``, reversed): the fine
confidence bins near 1 become fine margin bins near 0, where decisions are close calls.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylabel.stats.sampling import confidence_bins, stratum_bin_midpoint, stratum_key

#: the stratum "label" of a row: accepted or to review, then its count of undecided classes
GROUPS = ("acc/u0", "acc/u1", "acc/u2+", "rev/u0", "rev/u1", "rev/u2+")


def margin_edges(bin_edges: Sequence[float]) -> list[float]:
    """Margin bins from the confidence bins (``review.bin_edges``): ``1 - e``, reversed, so
    [0, .5, .7, .8, .9, .95, 1] gives [0, .05, .1, .2, .3, .5, 1]. A margin above 1 (a
    threshold outside [0, 1]) falls in the last bin."""
    edges = [round(1.0 - float(e), 9) for e in reversed(list(bin_edges))]
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"bin edges must be >= 2 strictly increasing values, got {bin_edges}")
    return edges


def undecided_counts(table: pa.Table) -> np.ndarray:
    """Number of undecided classes per row (a null list counts as none)."""
    col = table.column("undecided_labels")
    lengths = pc.fill_null(pc.list_value_length(col), 0)
    return lengths.to_numpy(zero_copy_only=False).astype(np.int64)


def row_groups(table: pa.Table) -> np.ndarray:
    """Each row's group (``GROUPS``): accepted flag x undecided count (0, 1, 2+)."""
    acc = pc.fill_null(table.column("accepted").cast(pa.bool_()), False)
    acc_np = acc.to_numpy(zero_copy_only=False).astype(bool)
    n_und = np.minimum(undecided_counts(table), 2)
    idx = np.where(acc_np, 0, 3) + n_und
    return np.asarray(GROUPS, dtype=object)[idx]


def with_group(table: pa.Table, column: str = "ml_group") -> pa.Table:
    """The table with its rows' group as a string column (the strata's "label" column)."""
    return table.append_column(column, pa.array(row_groups(table).tolist(), pa.string()))


def row_strata(table: pa.Table, edges: Sequence[float]) -> list[str]:
    """Stratum key of each row (``edges``: margin edges, see :func:`margin_edges`)."""
    if table.num_rows == 0:
        return []
    groups = row_groups(table)
    margin = table.column("margin").to_numpy(zero_copy_only=False).astype(np.float64)
    bins = confidence_bins(np.nan_to_num(margin, nan=0.0), edges)
    keys: dict[tuple[str, int], str] = {}
    out = []
    for g, b in zip(groups.tolist(), bins.tolist(), strict=True):
        key = keys.get((g, b))
        if key is None:
            key = keys[(g, b)] = stratum_key(g, b, edges)
        out.append(key)
    return out


def strata_counts(table: pa.Table, edges: Sequence[float]) -> dict[str, int]:
    """Population per stratum of one block of labeled rows (sum the blocks' dicts): what the
    label pass records as ``strata`` for the sample's allocation."""
    keys, counts = np.unique(np.asarray(row_strata(table, edges), dtype=object), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys.tolist(), counts.tolist(), strict=True)}


def error_weights(strata: Iterable[str]) -> dict[str, float]:
    """Per stratum sqrt(p(1-p)) for ``allocate(method="error_weighted")``: accepted rows take
    p = 0.5 + margin/2 (a decision at its threshold is a coin flip, one a full unit away is
    sure), rows with undecided classes p = 0.5 (the most uncertain)."""
    out = {}
    for s in strata:
        group = s.rsplit("|", 1)[0]
        mid = min(stratum_bin_midpoint(s), 1.0)
        p = 0.5 + mid / 2.0 if group.startswith("acc") else 0.5
        out[s] = math.sqrt(max(p * (1.0 - p), 0.0))
    return out


def queue_priority(table: pa.Table) -> np.ndarray:
    """Active-queue order, smallest first: ``margin - 2 x undecided classes``. Margins are
    below 2, so more undecided classes always come first, then the closer call."""
    margin = table.column("margin").to_numpy(zero_copy_only=False).astype(np.float64)
    return np.nan_to_num(margin, nan=0.0) - 2.0 * undecided_counts(table)
