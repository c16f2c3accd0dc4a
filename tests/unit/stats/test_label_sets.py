"""Multilabel seed labels as canonical set strings and bit-set codes."""

from __future__ import annotations

import numpy as np
import pytest

from raylabel.stats.label_sets import (
    MAX_MULTILABEL_CLASSES,
    LabelCoder,
    SetCodes,
    canonical_set,
    multi_hot,
    positive_weights,
    split_set,
)


def test_canonical_set_reads_lists_strings_and_nothing() -> None:
    assert canonical_set(["dog", "cat", "dog"], "|", "x") == "cat|dog"
    assert canonical_set(" dog | cat |", "|", "x") == "cat|dog"
    assert canonical_set(None, "|", "x") == ""
    assert canonical_set([], "|", "x") == ""
    assert canonical_set("", "|", "x") == ""
    assert split_set("cat|dog", "|") == ["cat", "dog"]
    assert split_set("", "|") == []


def test_canonical_set_refuses_bad_class_names() -> None:
    with pytest.raises(ValueError, match=r"row 3: class 'a\|b' contains seed\.label_separator"):
        canonical_set(["a|b"], "|", "row 3")
    with pytest.raises(ValueError, match="empty class name"):
        canonical_set(["a", " "], "|", "row 1")


def test_codes_are_bit_sets_and_round_trip_to_multi_hot() -> None:
    coder = LabelCoder.for_classes(["a", "b", "c"], "|")
    codes = coder.codes(["a|c", "", "b"])
    assert codes.tolist() == [0b101, 0, 0b010]
    np.testing.assert_array_equal(multi_hot(codes, 3), [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    index = SetCodes(coder)
    assert index["a|b|c"] == 7 and len(index) == 3 and list(index) == ["a", "b", "c"]


def test_multiclass_coder_is_the_class_index() -> None:
    coder = LabelCoder.for_classes(["a", "b"], None)
    assert coder.codes(["b", "a"]).tolist() == [1, 0]
    assert coder.strata(["b", "a"]) == ["b", "a"]


def test_too_many_multilabel_classes_are_refused() -> None:
    classes = [f"c{i}" for i in range(MAX_MULTILABEL_CLASSES + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_MULTILABEL_CLASSES} classes"):
        LabelCoder.for_classes(classes, "|")


def test_strata_group_by_the_rarest_class() -> None:
    coder = LabelCoder(("a", "b", "c"), "|")
    assert coder.strata(["a|b", "a", "a|c", "", "a|b"]) == ["b", "a", "c", "", "b"]


def test_positive_weights_favour_rare_classes() -> None:
    codes = np.array([0b01] * 9 + [0b11])  # a: 10/10 positive, b: 1/10
    w = positive_weights(codes, 2)
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(9.0)
