"""Known-answer tests for the multilabel run statistics (raylabel.stats.multilabel_counts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from raylabel.stats.multilabel_counts import LabelSetCounts, precision_coverage_by_class

CLASSES = ["cat", "dog", "car"]

# Four rows: positives, undecided classes, accepted (= nothing undecided).
LABELS = [["cat", "dog"], [], ["car"], ["cat", "dog", "car"]]
UNDECIDED = [[], ["dog"], ["cat"], []]
ACCEPTED = [True, False, False, True]


def _random_rows(n: int, seed: int) -> tuple[list[list[str]], list[list[str]], np.ndarray]:
    """Rows whose decisions are drawn per class: positive, negative or undecided."""
    rng = np.random.default_rng(seed)
    labels, undecided = [], []
    for _ in range(n):
        d = rng.choice(3, size=len(CLASSES), p=[0.3, 0.55, 0.15])  # pos, neg, undecided
        labels.append([c for c, v in zip(CLASSES, d, strict=True) if v == 0])
        undecided.append([c for c, v in zip(CLASSES, d, strict=True) if v == 2])
    accepted = np.array([not u for u in undecided])
    return labels, undecided, accepted


def test_known_counts() -> None:
    out = LabelSetCounts(CLASSES).add(LABELS, UNDECIDED, np.array(ACCEPTED)).to_json()
    assert out["total"] == 4 and out["accepted"] == 2
    assert out["per_class"]["cat"] == {
        "positive": 2,
        "undecided": 1,
        "negative": 1,
        "accepted_positive": 2,
        "accepted_negative": 0,
    }
    assert out["per_class"]["dog"] == {
        "positive": 2,
        "undecided": 1,
        "negative": 1,
        "accepted_positive": 2,
        "accepted_negative": 0,
    }
    assert out["per_class"]["car"]["positive"] == 2
    assert out["per_class"]["car"]["negative"] == 2
    assert out["per_class"]["car"]["accepted_negative"] == 1
    assert out["cardinality"] == [1, 1, 1, 1]  # items with 0, 1, 2, 3 positives
    assert out["accepted_cardinality"] == [0, 0, 1, 1]
    # class x class: diagonal = positives, off-diagonal = items carrying both
    assert out["cooccurrence"] == [[2, 2, 1], [2, 2, 1], [1, 1, 2]]


def test_add_table_equals_add_lists() -> None:
    labels, undecided, accepted = _random_rows(300, seed=3)
    n = len(labels)
    table = pa.table(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "labels": pa.array(labels, type=pa.list_(pa.string())),
            "undecided_labels": pa.array(undecided, type=pa.list_(pa.string())),
            "scores": pa.array([[0.5] * 3] * n, type=pa.list_(pa.float32())),
            "accepted": accepted,
            "labeled_at": [datetime(2024, 1, 1, tzinfo=UTC)] * n,
        }
    )
    chunked = pa.concat_tables([table.slice(0, 100), table.slice(100)])
    a = LabelSetCounts(CLASSES).add(labels, undecided, accepted)
    b = LabelSetCounts(CLASSES).add_table(chunked)
    assert a == b and a.total == n


def test_merge_of_parts_equals_adding_all() -> None:
    labels, undecided, accepted = _random_rows(500, seed=7)
    whole = LabelSetCounts(CLASSES).add(labels, undecided, accepted)
    merged = LabelSetCounts(CLASSES)
    for lo, hi in [(0, 0), (0, 10), (10, 137), (137, 400), (400, 500)]:
        part = LabelSetCounts(CLASSES).add(labels[lo:hi], undecided[lo:hi], accepted[lo:hi])
        merged.merge(part)
    assert merged == whole
    assert merged.to_json()["cooccurrence"] == whole.to_json()["cooccurrence"]
    # the widest part decides the cardinality histogram's width, whichever merges first
    wide = LabelSetCounts(CLASSES).add([CLASSES], [[]], [True])
    narrow = LabelSetCounts(CLASSES).add([[]], [["cat"]], [False])
    assert narrow.merge(wide).to_json()["cardinality"] == [1, 0, 0, 1]


def test_json_round_trip_and_consistency() -> None:
    labels, undecided, accepted = _random_rows(200, seed=11)
    counts = LabelSetCounts(CLASSES).add(labels, undecided, accepted)
    block = json.loads(json.dumps(counts.to_json()))
    back = LabelSetCounts.from_json(block)
    assert back == counts
    assert np.array_equal(back.undecided, counts.undecided)
    for c, v in block["per_class"].items():
        assert v["positive"] + v["undecided"] + v["negative"] == block["total"], c
    assert sum(block["cardinality"]) == block["total"]
    assert sum(block["accepted_cardinality"]) == block["accepted"]
    # merging a read-back block still adds up
    assert back.merge(counts).total == 2 * counts.total


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"not among the classes: \['horse'\]"):
        LabelSetCounts(CLASSES).add([["horse"]], [[]], [True])
    with pytest.raises(ValueError, match="accepted flags"):
        LabelSetCounts(CLASSES).add([["cat"]], [[]], [True, False])
    with pytest.raises(ValueError, match="classes differ"):
        LabelSetCounts(CLASSES).merge(LabelSetCounts(["cat", "dog"]))
    with pytest.raises(ValueError, match="lacks column"):
        LabelSetCounts(CLASSES).add_table(pa.table({"labels": [["cat"]]}))
    with pytest.raises(ValueError, match="malformed counts block"):
        LabelSetCounts.from_json({"classes": CLASSES, "total": 1})
    with pytest.raises(ValueError, match="duplicate"):
        LabelSetCounts(["a", "a"])


def test_empty_counts() -> None:
    out = LabelSetCounts(CLASSES).add([], [], np.zeros(0, dtype=bool)).to_json()
    assert out["total"] == 0 and out["cardinality"] == [0]
    assert out["per_class"]["cat"]["negative"] == 0


def test_precision_coverage_known_answer() -> None:
    # class a: scores .9 .8 .8 .3 with truth 1 0 1 0; class b: no true positives.
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.8, 0.2], [0.3, 0.7]])
    targets = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    out = precision_coverage_by_class(scores, targets, ["a", "b"])
    a = out["a"]
    assert a["threshold"] == [0.9, 0.8, 0.3]  # tied scores make one cut
    assert a["coverage"] == [0.25, 0.75, 1.0]
    assert a["precision"] == pytest.approx([1.0, 2 / 3, 0.5])
    assert a["recall"] == [0.5, 1.0, 1.0]
    b = out["b"]
    assert b["threshold"] == [0.7, 0.2, 0.1]
    assert b["precision"] == [0.0, 0.0, 0.0] and b["recall"] == [0.0, 0.0, 0.0]
    json.dumps(out)  # JSON-clean


def test_precision_coverage_downsamples_keeping_the_ends() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    scores = rng.random((n, 2))
    targets = (rng.random((n, 2)) < scores).astype(int)  # calibrated by construction
    out = precision_coverage_by_class(scores, targets, ["x", "y"], max_points=20)
    for c, curve in out.items():
        assert 2 <= len(curve["coverage"]) <= 20, c
        assert len({len(v) for v in curve.values()}) == 1
        assert curve["threshold"][0] == scores[:, 0 if c == "x" else 1].max()
        assert curve["coverage"][-1] == 1.0
        assert curve["coverage"] == sorted(curve["coverage"])
        assert curve["precision"][-1] == pytest.approx(targets[:, 0 if c == "x" else 1].mean())
        assert curve["precision"][0] > curve["precision"][-1]  # high cuts are more precise


def test_precision_coverage_shapes_checked() -> None:
    with pytest.raises(ValueError, match="2 classes"):
        precision_coverage_by_class(np.zeros((3, 3)), np.zeros((3, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="targets has shape"):
        precision_coverage_by_class(np.zeros((3, 2)), np.zeros((2, 2)), ["a", "b"])
    empty = precision_coverage_by_class(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"])
    assert empty["a"] == {"threshold": [], "coverage": [], "precision": [], "recall": []}
