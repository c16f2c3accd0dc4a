"""Seed labels in a listing: one class (multiclass) or a canonical set string (multilabel).

The planners read each label cell through `label_strings`; training maps the strings to
int codes with `label_index` (`raylabel.stats.label_sets` explains the bit sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from raylabel.errors import InputError
from raylabel.stats.label_sets import (
    LabelCoder,
    SetCodes,
    canonical_set,
    positive_weights,
    split_set,
)


def label_strings(values: list[Any], label_sep: str | None, where: str) -> list[str]:
    """The listing's label column: str() of each class (multiclass), or each item's class set
    as a canonical string (multilabel); a bad cell stops with one line naming the item row."""
    if label_sep is None:
        return [str(v) for v in values]
    out = []
    for row, v in enumerate(values):
        try:
            out.append(canonical_set(v, label_sep, f"{where} row {row}"))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return out


def classes_of(labels: list[str], separator: str | None) -> list[str]:
    """The sorted classes of a listing's distinct label strings."""
    if separator is not None:
        return sorted({c for v in labels for c in split_set(v, separator)})
    return sorted(labels)


def label_index(classes: list[str], separator: str | None) -> Mapping[str, int]:
    """label string -> the int code training sees: the class index, or (multilabel) the
    bit set of the item's classes; too many multilabel classes stop here (InputError)."""
    try:
        coder = LabelCoder.for_classes(classes, separator)
    except ValueError as exc:
        raise InputError(f"seed.path: {exc}") from None
    if coder.multilabel:
        return SetCodes(coder)
    return {c: i for i, c in enumerate(classes)}


def positive_weights_of(labels: list[str], classes: list[str], separator: str) -> list[float]:
    """Each class's BCE positive weight from the seed's label strings."""
    index = label_index(classes, separator)
    codes = np.asarray([index[v] for v in labels], dtype=np.int64)
    return [float(w) for w in positive_weights(codes, len(classes))]


def strata_of(labels: list[str], separator: str | None) -> list[str]:
    """What stratified splits and folds group the seed by (see LabelCoder.strata)."""
    return LabelCoder((), separator).strata(labels)
