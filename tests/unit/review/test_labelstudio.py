"""Tests for raylabel.labelstudio: task export, labeling config, review import/validation."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pytest

from raylabel.review import labelstudio as ls

CLASSES = ["cat", "dog", "a & <b>"]


def _sample() -> pa.Table:
    return pa.table(
        {
            "item_id": ["i1", "i2", "i3"],
            "uri": ["s3://b/1.png", "s3://b/2.png", "s3://b/3.png"],
            "label": ["cat", "dog", "a & <b>"],
            "confidence": pa.array([0.91, 0.55, 0.7], pa.float32()),
            "stratum": ["cat|0.90-0.95", "dog|0.50-0.70", "a & <b>|0.70-0.80"],
        }
    )


def test_tasks_follow_label_studio_import_format() -> None:
    tasks = ls.tasks_from_sample(_sample(), "m-2024-01-01", CLASSES)
    json.dumps(tasks)
    assert len(tasks) == 3
    t = tasks[0]
    assert t["data"] == {"image": "s3://b/1.png", "item_id": "i1", "uri": "s3://b/1.png"}
    (pred,) = t["predictions"]
    assert pred["model_version"] == "m-2024-01-01"
    assert pred["score"] == pytest.approx(0.91, abs=1e-6)
    assert isinstance(pred["score"], float)
    assert pred["result"] == [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": ["cat"]},
        }
    ]
    bare = ls.tasks_from_sample(_sample(), "m", CLASSES, with_predictions=False)
    assert all("predictions" not in task for task in bare)
    text = ls.tasks_from_sample(
        _sample().append_column("text", pa.array(["x", "y", "z"])),
        "m",
        CLASSES,
        to_name="text",
        data_key="text",
        payload_col="text",
    )
    assert text[2]["data"]["text"] == "z"
    assert text[2]["predictions"][0]["result"][0]["to_name"] == "text"
    with pytest.raises(ValueError, match="'dog'"):
        ls.tasks_from_sample(_sample(), "m", ["cat", "a & <b>"])


def test_labeling_config_xml() -> None:
    root = ET.fromstring(ls.labeling_config_xml(CLASSES))
    assert root.tag == "View"
    image = root.find("Image")
    assert image is not None
    assert image.attrib == {"name": "image", "value": "$image"}
    choices = root.find("Choices")
    assert choices is not None
    assert choices.attrib["name"] == "label" and choices.attrib["toName"] == "image"
    assert [c.attrib["value"] for c in choices.findall("Choice")] == CLASSES
    text = ET.fromstring(ls.labeling_config_xml(["pos", "neg"], modality="text"))
    node = text.find("Text")
    assert node is not None
    assert node.attrib == {"name": "text", "value": "$text"}
    assert text.find("Choices").attrib["toName"] == "text"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        ls.labeling_config_xml(CLASSES, modality="audio")


def test_parse_csv_reviews(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("item_id,true_label,note\ni1,cat,ok\ni2,,not yet\ni3,dog,\n\n")
    table = ls.parse_reviews(path)
    assert table.schema == pa.schema([("item_id", pa.string()), ("true_label", pa.string())])
    assert table.to_pylist() == [
        {"item_id": "i1", "true_label": "cat"},
        {"item_id": "i3", "true_label": "dog"},
    ]
    assert ls.parse_reviews(path.read_bytes(), name="x.csv").equals(table)


def test_parse_csv_rejects_malformed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\ni1,cat\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*'item_id'"):
        ls.parse_reviews(bad)
    bad.write_text("item_id,true_label\ni1,cat\n,dog\n")
    with pytest.raises(ValueError, match=r"bad\.csv: row at line 3"):
        ls.parse_reviews(bad)
    bad.write_text("item_id,true_label\ni1,cat,extra\n")
    with pytest.raises(ValueError, match=r"line 2"):
        ls.parse_reviews(bad)
    with pytest.raises(ValueError, match=r"missing\.csv"):
        ls.parse_reviews(tmp_path / "missing.csv")


def _export() -> list[dict]:
    """A Label Studio export of the tasks we produced, after review."""
    tasks = ls.tasks_from_sample(_sample(), "m", CLASSES)
    for i, task in enumerate(tasks):
        task["id"] = 100 + i

    def ann(choice: str, cancelled: bool = False, by: int = 1) -> dict:
        return {
            "id": 1,
            "completed_by": by,
            "was_cancelled": cancelled,
            "result": [
                {
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [choice]},
                }
            ],
        }

    tasks[0]["annotations"] = [ann("dog"), ann("cat")]  # one reviewer: their last one wins
    tasks[1]["annotations"] = [ann("cat"), ann("dog", cancelled=True)]  # cancelled ignored
    tasks[2]["annotations"] = [ann("cat", cancelled=True)]  # only skipped: not reviewed
    return tasks


def test_parse_label_studio_export(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_export()))
    table = ls.parse_reviews(path)
    assert table.to_pylist() == [
        {"item_id": "i1", "true_label": "cat"},
        {"item_id": "i2", "true_label": "cat"},
    ]
    assert ls.parse_reviews(json.dumps(_export()).encode()).equals(table)


def test_parse_label_studio_rejects_malformed(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text("[{")
    with pytest.raises(ValueError, match=r"export\.json: invalid JSON at line 1"):
        ls.parse_reviews(path)
    path.write_text(json.dumps({"tasks": []}))
    with pytest.raises(ValueError, match="expected a JSON list"):
        ls.parse_reviews(path)
    tasks = _export()
    del tasks[1]["data"]["item_id"]
    path.write_text(json.dumps(tasks))
    with pytest.raises(ValueError, match=r"export\.json: task 1 \(id 101\): data has no item_id"):
        ls.parse_reviews(path)
    tasks = _export()
    tasks[0]["annotations"][-1]["result"][0]["value"]["choices"] = []
    path.write_text(json.dumps(tasks))
    with pytest.raises(ValueError, match=r"task 0 \(id 100\).*choices"):
        ls.parse_reviews(path)
    path.write_text(json.dumps([_export()[0], "nope"]))
    with pytest.raises(ValueError, match="task 1"):
        ls.parse_reviews(path)


def test_each_annotator_is_one_review() -> None:
    """Two annotators of one task are two reviews (merged when they agree, reported when not);
    one annotator's later annotation replaces their earlier one."""
    tasks = _export()
    first = tasks[0]["annotations"][-1]
    other = json.loads(json.dumps(first))
    other["completed_by"] = {"id": 7, "email": "b@example.com"}  # exports may nest the user
    other["result"][0]["value"]["choices"] = ["dog"]
    tasks[0]["annotations"].append(other)
    tasks[1]["annotations"].append(json.loads(json.dumps(first)) | {"completed_by": 9})
    table = ls.parse_reviews(json.dumps(tasks).encode())
    assert sorted(table.to_pylist(), key=str) == sorted(
        [
            {"item_id": "i1", "true_label": "cat"},
            {"item_id": "i1", "true_label": "dog"},
            {"item_id": "i2", "true_label": "cat"},
            {"item_id": "i2", "true_label": "cat"},
        ],
        key=str,
    )
    merged = ls.merge_reviews([table])
    assert merged.table.to_pylist() == [{"item_id": "i2", "true_label": "cat"}]
    assert merged.repeats == 1 and merged.disagreements == {"i1": ["cat", "dog"]}


def test_validate_reviews() -> None:
    reviews = pa.table({"item_id": ["i1", "zz", "yy"], "true_label": ["cat", "dog", "cat"]})
    with pytest.raises(ValueError, match=r"^2 reviewed item_id.*'zz'"):
        ls.validate_reviews(reviews, {"i1", "i2"}, CLASSES)
    wrong = pa.table({"item_id": ["i1", "i2"], "true_label": ["cow", "dog"]})
    with pytest.raises(ValueError, match=r"^1 review.*'cow'.*'i1'"):
        ls.validate_reviews(wrong, {"i1", "i2"}, CLASSES)
    ls.validate_reviews(wrong.slice(1), {"i1", "i2"}, CLASSES)


def test_repeated_reviews_agreeing_count_once_disagreeing_are_kept_aside(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("item_id,true_label\ni1,cat\ni2,cat\ni3,dog\ni1,cat\n")
    b = tmp_path / "b.csv"
    b.write_text("item_id,true_label\ni2,dog\ni4,dog\n")
    merged = ls.merge_reviews([ls.parse_reviews(a), ls.parse_reviews(b)])
    assert merged.table.to_pylist() == [
        {"item_id": "i1", "true_label": "cat"},
        {"item_id": "i3", "true_label": "dog"},
        {"item_id": "i4", "true_label": "dog"},
    ]
    assert merged.repeats == 1
    assert merged.disagreements == {"i2": ["cat", "dog"]}
    assert merged.to_json() == {"repeats": 1, "disagreements": 1, "items": {"i2": ["cat", "dog"]}}
