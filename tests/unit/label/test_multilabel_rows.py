"""Multilabel rows and their write-task statistics, from scores and the card's thresholds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raylabel.io.schema import ERROR_SCHEMA, MULTILABEL_SCHEMA
from raylabel.label.multilabel_rows import card_thresholds, multilabel_table
from raylabel.label.multilabel_summary import multilabel_blocks
from raylabel.label.sink import block_stats, merge_stats
from raylabel.models.card import ModelCard

CLASSES = ["bike", "car", "person"]
EDGES = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0]


def _card() -> ModelCard:
    return ModelCard(
        model_version="m-1",
        arch="small_cnn",
        modality="image",
        classes=CLASSES,
        preprocessing={},
        task="multilabel",
        temperatures=[1.0, 1.0, 1.0],
        thresholds={"bike": 0.8, "car": 0.9, "person": 1.01},
        negative_thresholds={"bike": 0.2, "car": 0.1, "person": 0.3},
    )


def _rows(scores: np.ndarray, ok: np.ndarray | None = None) -> pa.Table:
    n = len(scores)
    batch = {"item_id": [f"i{i}" for i in range(n)], "uri": [f"s3://b/{i}" for i in range(n)]}
    ok = np.ones(n, bool) if ok is None else ok
    card = _card()
    classes = np.asarray(CLASSES, dtype=object)
    return multilabel_table(
        batch, scores * 0.9, scores, ok, card_thresholds(card), classes, ("m-1", "r-1", "d")
    )


def test_each_class_is_decided_alone_and_accepted_needs_all() -> None:
    scores = np.array(
        [
            [0.95, 0.05, 0.10],  # bike positive, car and person negative: accepted
            [0.95, 0.50, 0.10],  # car undecided
            [0.10, 0.99, 0.90],  # person can never be positive: undecided
        ]
    )
    t = _rows(scores)
    assert t.schema == MULTILABEL_SCHEMA
    assert t.column("labels").to_pylist() == [["bike"], ["bike"], ["car"]]
    assert t.column("undecided_labels").to_pylist() == [[], ["car"], ["person"]]
    assert t.column("accepted").to_pylist() == [True, False, False]
    np.testing.assert_allclose(t.column("scores").to_pylist()[0], [0.95, 0.05, 0.10], atol=1e-6)
    # the closest call of row 0: bike 0.95 is 0.15 above its positive threshold, car 0.05
    # is 0.05 below its negative one, person 0.10 is 0.20 below its negative one
    assert t.column("margin").to_pylist()[0] == np.float32(0.05)


def test_failed_rows_decide_nothing() -> None:
    t = _rows(np.array([[0.95, 0.95, 0.95]]), ok=np.array([False]))
    assert t.column("labels").to_pylist() == [[]]
    assert t.column("undecided_labels").to_pylist() == [[]]
    assert t.column("accepted").to_pylist() == [False]


def test_write_task_stats_add_up_and_feed_the_summary() -> None:
    rng = np.random.default_rng(3)
    t = _rows(rng.random((40, 3)))
    errors = pa.table({"item_id": [], "uri": [], "stage": [], "error": []}, schema=ERROR_SCHEMA)
    parts = [
        block_stats(t.slice(0, 15), errors, CLASSES, EDGES, "multilabel"),
        block_stats(t.slice(15), errors, CLASSES, EDGES, "multilabel"),
    ]
    whole = block_stats(t, errors, CLASSES, EDGES, "multilabel")
    merged = merge_stats(parts)
    for key in ("labeled", "accepted", "per_class", "accepted_per_class", "strata"):
        assert merged[key] == whole[key], key
    assert merged["undecided_per_class"] == whole["undecided_per_class"]
    assert merged["label_sets"] == whole["label_sets"]
    assert sum(merged["strata"].values()) == 40
    positives = {c: sum(c in row for row in t.column("labels").to_pylist()) for c in CLASSES}
    assert merged["per_class"] == positives
    per_class = {c: {"labeled": merged["per_class"][c], "accepted": 0} for c in CLASSES}
    blocks = multilabel_blocks(_card(), merged, per_class)
    assert blocks["task"] == "multilabel"
    for c in CLASSES:
        v = blocks["per_class"][c]
        assert v["positive"] + v["undecided"] + v["negative"] == 40
    assert blocks["multilabel"]["thresholds"]["negative"]["car"] == 0.1
