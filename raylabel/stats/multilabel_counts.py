"""Run statistics of a multilabel run (task=multilabel): what the summary and report show.

A multilabel item carries one decision per class (positive, negative or undecided), so the
multiclass per-class counts do not describe it. :class:`LabelSetCounts` counts those decisions
per class, how many positives items carry (label cardinality) and which classes come together
(co-occurrence). It is additive: each write task fills its own from its rows, the driver
merges them, and only the small JSON block reaches summary.json, however large the drop.

:func:`precision_coverage_by_class` gives, per class, the precision a positive cut at each
calibrated score would reach against reference labels and the share of items it would mark
positive: the multilabel counterpart of ``calibration.coverage_precision_curve``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["LabelSetCounts", "precision_coverage_by_class"]

#: Counts kept per class, in rows: [all rows, accepted rows].
_ALL, _ACC = 0, 1


class LabelSetCounts:
    """Mergeable per-class decision counts, label cardinality and co-occurrence of a multilabel
    run, so write tasks report a few numbers instead of their rows."""

    def __init__(self, classes: Sequence[str]) -> None:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"LabelSetCounts: duplicate class names in {names}")
        self.classes = names
        self._index = {c: i for i, c in enumerate(names)}
        k = len(names)
        self.total = 0
        self.accepted = 0
        self.positive = np.zeros((2, k), dtype=np.int64)  # [all, accepted] x class
        self.undecided = np.zeros((2, k), dtype=np.int64)
        self.cardinality = np.zeros((2, 1), dtype=np.int64)  # [all, accepted] x n positives
        self.cooccurrence = np.zeros((k, k), dtype=np.int64)

    # ------------------------------------------------------------------ adding rows

    def add(
        self,
        labels: Sequence[Sequence[str]],
        undecided: Sequence[Sequence[str]],
        accepted: np.ndarray | Sequence[bool],
    ) -> LabelSetCounts:
        """Counts rows given as Python lists (positives, undecided classes, accepted flags)."""
        typ = pa.list_(pa.string())
        return self._add_arrays(
            pa.array(list(labels), type=typ),
            pa.array(list(undecided), type=typ),
            np.asarray(accepted, dtype=bool),
        )

    def add_table(self, table: pa.Table) -> LabelSetCounts:
        """Counts the rows of a labels table (MULTILABEL_SCHEMA: labels, undecided_labels,
        accepted), as a write task holds them."""
        need = ("labels", "undecided_labels", "accepted")
        missing = [c for c in need if c not in table.column_names]
        if missing:
            raise ValueError(f"LabelSetCounts.add_table: table lacks column(s) {missing}")
        acc = table.column("accepted").combine_chunks().fill_null(False)
        return self._add_arrays(
            table.column("labels").combine_chunks(),
            table.column("undecided_labels").combine_chunks(),
            acc.to_numpy(zero_copy_only=False).astype(bool),
        )

    def _multi_hot(self, lists: pa.Array, what: str) -> np.ndarray:
        """(rows x classes) bool matrix of a list<string> column; unknown names are an error."""
        hot = np.zeros((len(lists), len(self.classes)), dtype=bool)
        flat = pc.list_flatten(lists)
        if len(flat) == 0:
            return hot
        rows = pc.list_parent_indices(lists).to_numpy()
        idx = pc.index_in(flat, value_set=pa.array(self.classes, type=pa.string()))
        if idx.null_count:
            bad = sorted({str(v) for v in pc.filter(flat, pc.is_null(idx)).to_pylist()})
            raise ValueError(f"LabelSetCounts: {what} name(s) not among the classes: {bad[:5]}")
        hot[rows, idx.to_numpy(zero_copy_only=False)] = True
        return hot

    def _add_arrays(
        self, labels: pa.Array, undecided: pa.Array, accepted: np.ndarray
    ) -> LabelSetCounts:
        """Adds rows given as Arrow list arrays plus a bool vector of accepted flags."""
        n = len(labels)
        if len(undecided) != n or accepted.shape != (n,):
            raise ValueError(
                f"LabelSetCounts: {n} label rows but {len(undecided)} undecided rows and "
                f"{accepted.shape[0] if accepted.ndim else 0} accepted flags"
            )
        pos = self._multi_hot(labels, "label")
        und = self._multi_hot(undecided, "undecided label") & ~pos  # a positive is decided
        self.total += n
        self.accepted += int(accepted.sum())
        for row, mask in ((_ALL, slice(None)), (_ACC, accepted)):
            self.positive[row] += pos[mask].sum(axis=0)
            self.undecided[row] += und[mask].sum(axis=0)
        card = pos.sum(axis=1)
        width = int(card.max(initial=0)) + 1
        self._grow_cardinality(width)
        self.cardinality[_ALL, :width] += np.bincount(card, minlength=width)
        self.cardinality[_ACC, :width] += np.bincount(card[accepted], minlength=width)
        p = pos.astype(np.int64)
        self.cooccurrence += p.T @ p
        return self

    def _grow_cardinality(self, width: int) -> None:
        """Room for items with up to ``width - 1`` positives."""
        have = self.cardinality.shape[1]
        if width > have:
            grown = np.zeros((2, width), dtype=np.int64)
            grown[:, :have] = self.cardinality
            self.cardinality = grown

    # ------------------------------------------------------------------ merging

    def merge(self, other: LabelSetCounts) -> LabelSetCounts:
        """Adds another task's counts into this one (same classes, same order); returns self."""
        if other.classes != self.classes:
            raise ValueError(
                f"LabelSetCounts.merge: classes differ ({self.classes} vs {other.classes})"
            )
        self.total += other.total
        self.accepted += other.accepted
        self.positive += other.positive
        self.undecided += other.undecided
        self._grow_cardinality(other.cardinality.shape[1])
        self.cardinality[:, : other.cardinality.shape[1]] += other.cardinality
        self.cooccurrence += other.cooccurrence
        return self

    @property
    def negative(self) -> np.ndarray:
        """[all, accepted] x class counts of rows where the class was decided negative."""
        return np.array([self.total, self.accepted])[:, None] - self.positive - self.undecided

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The summary.json block: plain ints and lists, classes in the card's order."""
        neg = self.negative
        per_class = {
            c: {
                "positive": int(self.positive[_ALL, i]),
                "undecided": int(self.undecided[_ALL, i]),
                "negative": int(neg[_ALL, i]),
                "accepted_positive": int(self.positive[_ACC, i]),
                "accepted_negative": int(neg[_ACC, i]),
            }
            for i, c in enumerate(self.classes)
        }
        return {
            "classes": list(self.classes),
            "total": int(self.total),
            "accepted": int(self.accepted),
            "per_class": per_class,
            "cardinality": _trim(self.cardinality[_ALL]),
            "accepted_cardinality": _trim(self.cardinality[_ACC]),
            "cooccurrence": self.cooccurrence.tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelSetCounts:
        """Reads back :meth:`to_json` (e.g. to merge a previous run's carried counts)."""
        try:
            out = cls(data["classes"])
            k = len(out.classes)
            out.total, out.accepted = int(data["total"]), int(data["accepted"])
            for i, c in enumerate(out.classes):
                pcs = data["per_class"][c]
                out.positive[:, i] = (pcs["positive"], pcs["accepted_positive"])
                und_acc = out.accepted - int(pcs["accepted_negative"]) - out.positive[_ACC, i]
                out.undecided[:, i] = (pcs["undecided"], und_acc)
            cards = [list(data["cardinality"]), list(data["accepted_cardinality"])]
            out._grow_cardinality(max(len(cards[0]), len(cards[1]), 1))
            for row, values in enumerate(cards):
                out.cardinality[row, : len(values)] = values
            out.cooccurrence = np.asarray(data["cooccurrence"], dtype=np.int64).reshape(k, k)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"LabelSetCounts.from_json: malformed counts block ({exc!r})") from exc
        return out

    def __eq__(self, other: object) -> bool:
        """Two accumulators are equal when their JSON blocks are (tests compare merges)."""
        return isinstance(other, LabelSetCounts) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable


def _trim(counts: np.ndarray) -> list[int]:
    """Cardinality histogram without trailing empty bins (always at least the 0 bin)."""
    nz = np.flatnonzero(counts)
    end = int(nz[-1]) + 1 if nz.size else 1
    return [int(v) for v in counts[:end]]


def precision_coverage_by_class(
    scores: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    max_points: int = 50,
) -> dict[str, dict[str, list[float]]]:
    """Per class, precision vs coverage of calling "positive" at each cut of the score.

    ``scores`` are calibrated per-class probabilities and ``targets`` the 0/1 reference labels,
    both (items x classes) in ``classes`` order. For each distinct score s of a class, taken
    from the highest down, the cut "positive when score >= s" gives one point:

    - ``threshold``: the cut s;
    - ``coverage``: the fraction of all items it marks positive;
    - ``precision``: the fraction of those that are truly positive;
    - ``recall``: the fraction of the class's true positives it finds (0 if it has none).

    Each curve keeps its first and last cut and evenly spaced ones between, at most
    ``max_points`` in all; a class with no items gets empty lists.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(targets)
    names = [str(c) for c in classes]
    if s.ndim != 2 or s.shape[1] != len(names):
        raise ValueError(f"scores must be (items x {len(names)} classes), got shape {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"targets has shape {y.shape} but scores has {s.shape}")
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    return {c: _class_curve(s[:, i], y[:, i].astype(bool), max_points) for i, c in enumerate(names)}


def _class_curve(score: np.ndarray, truth: np.ndarray, max_points: int) -> dict[str, list[float]]:
    """One class's curve: a point per distinct score, highest first, then downsampled."""
    n = score.size
    order = np.argsort(-score, kind="stable")
    sc, hit = score[order], truth[order]
    # The last position of every run of equal scores: a cut keeps all items tied at it.
    last = np.flatnonzero(np.append(sc[1:] != sc[:-1], True)) if n else np.array([], dtype=int)
    covered = last + 1
    true_pos = np.cumsum(hit)[last] if n else np.array([])
    positives = int(truth.sum())
    keep = _even_indices(covered.size, max_points)
    covered, true_pos = covered[keep], true_pos[keep]
    return {
        "threshold": sc[last][keep].tolist(),
        "coverage": (covered / max(n, 1)).tolist(),
        "precision": (true_pos / covered).tolist() if covered.size else [],
        "recall": (true_pos / positives if positives else np.zeros(covered.size)).tolist(),
    }


def _even_indices(size: int, most: int) -> np.ndarray:
    """Indices 0..size-1 thinned to at most ``most``, always keeping the first and the last."""
    if size <= most:
        return np.arange(size)
    return np.unique(np.round(np.linspace(0, size - 1, most)).astype(np.int64))
