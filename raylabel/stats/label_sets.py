"""Seed labels as codes: a class index (multiclass) or a bit set of classes (multilabel).

Every training path moves one int64 label per item through Ray Data (folds, the embedding
cache, feedback rows, checkpoints), so a multilabel item's class set travels as a bit set in
that same int32 column: bit c is set when the item has class c. That caps a multilabel task at
`MAX_MULTILABEL_CLASSES` classes; `LabelCoder.for_classes` refuses more with one line.

A multilabel seed's listing keeps each item's set as one canonical string (sorted classes
joined by the separator, "" for none), so fingerprints, deduplication and listings stay
plain strings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: bits 0..30: the training label column is int32 for both tasks
MAX_MULTILABEL_CLASSES = 31


def split_set(label: str, separator: str) -> list[str]:
    """The classes of one canonical set string ("" is the empty set)."""
    return [p for p in label.split(separator) if p] if label else []


def canonical_set(value: object, separator: str, where: str) -> str:
    """One seed label cell as the canonical set string: a list (JSONL/Parquet) or a
    separator-joined string (CSV); None/empty is an item with no class. ValueError names
    `where` when a class is blank or holds the separator."""
    if value is None:
        return ""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(separator)]
        parts = [p for p in parts if p]
    elif isinstance(value, Iterable):
        parts = []
        for v in value:
            name = "" if v is None else str(v).strip()
            if not name:
                raise ValueError(f"{where}: a label list holds an empty class name")
            if separator in name:
                raise ValueError(
                    f"{where}: class {name!r} contains seed.label_separator {separator!r}"
                )
            parts.append(name)
    else:
        parts = [str(value).strip()] if str(value).strip() else []
    return separator.join(sorted(set(parts)))


@dataclass(frozen=True)
class LabelCoder:
    """Maps seed label strings to the int64 codes training sees, and back."""

    classes: tuple[str, ...]
    separator: str | None = None  # None: multiclass

    @classmethod
    def for_classes(cls, classes: Sequence[str], separator: str | None) -> LabelCoder:
        """A coder for the card's classes; a multilabel task over too many classes is refused."""
        if separator is not None and len(classes) > MAX_MULTILABEL_CLASSES:
            raise ValueError(
                f"task=multilabel supports at most {MAX_MULTILABEL_CLASSES} classes; the seed "
                f"has {len(classes)}"
            )
        return cls(tuple(classes), separator)

    @property
    def multilabel(self) -> bool:
        """Whether a code is a bit set of classes."""
        return self.separator is not None

    def code(self, label: str) -> int:
        """The class index, or the bit set of the label's classes."""
        index = {c: i for i, c in enumerate(self.classes)}
        if self.separator is None:
            return index[label]
        return sum(1 << index[c] for c in split_set(label, self.separator))

    def codes(self, labels: Iterable[str]) -> np.ndarray:
        """`code` of every label, as int64."""
        index = {c: i for i, c in enumerate(self.classes)}
        if self.separator is None:
            return np.asarray([index[v] for v in labels], dtype=np.int64)
        sep = self.separator
        return np.asarray(
            [sum(1 << index[c] for c in split_set(v, sep)) for v in labels], dtype=np.int64
        )

    def strata(self, labels: Sequence[str]) -> list[str]:
        """What stratified splits group by: the class (multiclass), or the rarest class of each
        item's set (multilabel: sets are too many to group by, and the rarest class is the one
        a split must not starve); "" for an item without classes."""
        if self.separator is None:
            return list(labels)
        sets = [split_set(v, self.separator) for v in labels]
        freq = Counter(c for s in sets for c in s)
        return [min(s, key=lambda c: (freq[c], c)) if s else "" for s in sets]


class SetCodes(Mapping[str, int]):
    """`index[label]` for a multilabel seed: the bit set of a canonical set string, so code that
    maps labels through a class-index dict handles both tasks."""

    def __init__(self, coder: LabelCoder) -> None:
        self._coder = coder
        self._index = {c: i for i, c in enumerate(coder.classes)}

    def __getitem__(self, label: str) -> int:
        sep = self._coder.separator or "|"
        return sum(1 << self._index[c] for c in split_set(label, sep))

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def multi_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Bit-set codes -> a [N, n_classes] 0/1 float32 matrix."""
    bits = (np.asarray(codes, dtype=np.int64)[:, None] >> np.arange(n_classes)) & 1
    return bits.astype(np.float32)


def positive_weights(codes: np.ndarray, n_classes: int, cap: float = 50.0) -> np.ndarray:
    """BCE positive weight per class, negatives / positives (capped): a rare class's few
    positives count as much as its many negatives, so its sigmoid does not collapse to 0."""
    targets = multi_hot(codes, n_classes)
    pos = targets.sum(0)
    neg = len(targets) - pos
    return np.clip(neg / np.maximum(pos, 1.0), 1.0, cap).astype(np.float32)
