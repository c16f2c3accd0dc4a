"""Issue #18: reviews of a multilabel run come back as label sets (CSV, Label Studio)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from raylabel.review import labelstudio as ls
from raylabel.review import ml_evaluate
from raylabel.review import ml_reviews as mr

CLASSES = ["cat", "dog", "sky"]


def _ann(choices: list[str] | None, who: int = 1, cancelled: bool = False) -> dict:
    result = (
        []
        if choices is None
        else [{"from_name": "label", "to_name": "image", "type": "choices",
               "value": {"choices": choices}}]
    )  # fmt: skip
    return {"completed_by": who, "was_cancelled": cancelled, "result": result}


def test_label_studio_export_gives_every_choice_and_empty_is_no_class() -> None:
    tasks = [
        {"id": 1, "data": {"item_id": "a"}, "annotations": [_ann(["sky", "cat"])]},
        {"id": 2, "data": {"item_id": "b"}, "annotations": [_ann(None)]},  # no class
        {"id": 3, "data": {"item_id": "c"}, "annotations": []},  # not reviewed
        {"id": 4, "data": {"item_id": "d"}, "annotations": [_ann(["dog"], cancelled=True)]},
        {"id": 5, "data": {"item_id": "e"},
         "annotations": [_ann(["dog"], 1), _ann(["dog", "cat"], 1)]},  # later one replaces
    ]  # fmt: skip
    t = mr.parse_multilabel_reviews(json.dumps(tasks).encode(), name="export.json")
    assert t.schema.field("true_labels").type == pa.list_(pa.string())
    assert dict(
        zip(*(t.column(c).to_pylist() for c in ("item_id", "true_labels")), strict=True)
    ) == {
        "a": ["cat", "sky"],
        "b": [],
        "e": ["cat", "dog"],
    }
    bad = [{"data": {"item_id": "a"}, "annotations": [_ann(None) | {"result": [
        {"value": {"choices": "cat"}}]}]}]  # fmt: skip
    with pytest.raises(ValueError, match="task 0: 'choices' is not a list"):
        mr.parse_multilabel_reviews(json.dumps(bad).encode(), name="x.json")


def test_csv_sets_use_the_separator_none_marker_and_blank_is_unreviewed() -> None:
    text = "item_id,true_labels\na,dog|cat\nb,(none)\nc,\nd, sky \n\n"
    t = mr.parse_multilabel_reviews(text.encode(), name="r.csv")
    assert t.column("item_id").to_pylist() == ["a", "b", "d"]
    assert t.column("true_labels").to_pylist() == [["cat", "dog"], [], ["sky"]]
    semi = mr.parse_multilabel_reviews(b"item_id,true_label\na,dog;sky\n", "r.csv", separator=";")
    assert semi.column("true_labels").to_pylist() == [["dog", "sky"]]
    with pytest.raises(ValueError, match=r"r\.csv: CSV header lacks column 'item_id'"):
        mr.parse_multilabel_reviews(b"id,true_labels\na,cat\n", "r.csv")


def test_merge_and_validation_refuse_like_multiclass() -> None:
    one = mr.parse_multilabel_reviews(b"item_id,true_labels\na,cat|dog\nb,sky\nc,(none)\n", "1.csv")
    two = mr.parse_multilabel_reviews(b"item_id,true_labels\na,dog|cat\nb,sky|dog\n", "2.csv")
    merged = mr.merge_multilabel_reviews([one, two])
    assert merged.table.column("item_id").to_pylist() == ["a", "c"]
    assert merged.repeats == 1 and merged.disagreements == {"b": ["dog|sky", "sky"]}
    mr.validate_multilabel_reviews(merged.table, {"a", "b", "c"}, CLASSES)
    with pytest.raises(ValueError, match=r"not in the review sample.*'c'"):
        mr.validate_multilabel_reviews(merged.table, {"a", "b"}, CLASSES)
    odd = mr.parse_multilabel_reviews(b"item_id,true_labels\na,cat|cow\n", "3.csv")
    with pytest.raises(ValueError, match="class not in the model's classes, first: 'cow'"):
        mr.validate_multilabel_reviews(odd, {"a"}, CLASSES)


def test_feedback_rows_carry_the_joined_sets() -> None:
    sample = pa.table({"item_id": ["a", "b", "c"], "uri": ["/a", "/b", "/c"],
                       "labels": [["cat"], [], ["dog", "sky"]]})  # fmt: skip
    merged = mr.merge_multilabel_reviews(
        [mr.parse_multilabel_reviews(b"item_id,true_labels\na,cat|sky\nb,(none)\n", "r.csv")]
    )
    fb = ml_evaluate.as_feedback(ml_evaluate.join_sets(sample, merged), "|")
    assert fb.column("true_label").to_pylist() == ["cat|sky", "", None]
    assert fb.column("label").to_pylist() == ["cat", "", "dog|sky"]
    assert ml_evaluate.n_reviewed(ml_evaluate.join_sets(sample, merged)) == 2


def test_multiclass_label_studio_files_are_unchanged() -> None:
    xml = ls.labeling_config_xml(CLASSES)
    assert 'choice="single"' in xml and 'choice="multiple"' not in xml
    assert 'choice="multiple"' in ls.labeling_config_xml(CLASSES, multiple=True)
    sample = pa.table({"item_id": ["i"], "uri": ["/i"], "labels": [["cow"]], "scores": [[0.9]]})
    with pytest.raises(ValueError, match="unknown label 'cow'"):
        ls.tasks_from_sample(sample, "m", CLASSES, labels_col="labels")
    assert ls.multilabel_score([0.9, 0.2, 0.6], ["cat", "sky"], CLASSES) == pytest.approx(0.6)
