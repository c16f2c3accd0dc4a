"""Integration: task=multilabel through train and label on the real local Ray cluster, for
generated tagged images (small_cnn, 2 Ray Train workers) and tagged tickets (rnn)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raylabel.config import load_config
from raylabel.demo.multilabel_images import MultilabelImageSpec, write_multilabel_image_demo
from raylabel.demo.multilabel_texts import MultilabelTextSpec, write_multilabel_text_demo
from raylabel.io.schema import ERROR_SCHEMA, MULTILABEL_SCHEMA, TEXT_MULTILABEL_SCHEMA
from raylabel.label import LabelResult, label
from raylabel.train import TrainResult, train

pytestmark = pytest.mark.slow

COMMON = [
    "task=multilabel",
    "train.epochs=3",
    "train.min_steps=0",
    "train.batch_size=32",
    "train.calibration_folds=3",
    "review.size=20",
    "review.uncertain_size=6",
]


@dataclass
class Ran:
    trained: TrainResult
    labeled: LabelResult
    truth: Path
    drop_items: int
    overrides: list[str]


@pytest.fixture(scope="module")
def images(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    root = tmp_path_factory.mktemp("ml-images")
    spec = MultilabelImageSpec(n_seed=120, n_drop=50, image_size=32, n_bad_items=2)
    data = write_multilabel_image_demo(root / "data", spec)
    overrides = [
        *COMMON,
        "model.arch=small_cnn",
        "model.image_size=32",
        "train.num_workers=2",
        f"seed.path={data.seed_path}",
        f"drop.path={data.drop_dir}",
        f"output.root={root / 'out'}",
        "drop.name=ml-images",
    ]
    cfg = load_config([], overrides)
    n = len(list(data.drop_dir.iterdir()))
    return Ran(train(cfg), label(cfg), data.truth_path, n, overrides)


@pytest.fixture(scope="module")
def texts(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    root = tmp_path_factory.mktemp("ml-texts")
    spec = MultilabelTextSpec(n_seed=120, n_drop=40, n_bad_items=1, seed_format="csv")
    data = write_multilabel_text_demo(root / "data", spec)
    overrides = [
        *COMMON,
        "modality=text",
        "model.arch=rnn",
        "model.max_length=64",
        "model.tokenizer.vocab_size=800",
        "train.num_workers=1",
        f"seed.path={data.seed_path}",
        f"drop.path={data.drop_dir}",
        f"output.root={root / 'out'}",
        "drop.name=ml-texts",
    ]
    cfg = load_config([], overrides)
    n = len(list(data.drop_dir.iterdir()))
    return Ran(train(cfg), label(cfg), data.truth_path, n, overrides)


def _check_card(ran: Ran) -> dict:
    card = json.loads((Path(ran.trained.model_uri) / "model_card.json").read_text())
    assert card["task"] == "multilabel"
    k = len(card["classes"])
    assert len(card["temperatures"]) == k and all(t > 0 for t in card["temperatures"])
    for c in card["classes"]:  # a positive threshold above every negative one, or a sentinel
        t, u = card["thresholds"][c], card["negative_thresholds"][c]
        assert u < t and (0 <= t <= 1 or t == 1.01) and (0 <= u <= 1 or u == -0.01)
    calib = pq.read_table(Path(ran.trained.model_uri) / "calibration.parquet")
    assert {"scores", "targets"} <= set(calib.column_names)
    assert all(len(s) == k for s in calib.column("scores").to_pylist())
    return card


def _check_run(ran: Ran, schema: object) -> None:
    card = _check_card(ran)
    run = Path(ran.labeled.run_uri)
    labels = pq.read_table(run / "labels")
    errors = pq.read_table(run / "errors")
    assert labels.schema.remove_metadata() == schema
    assert errors.schema.remove_metadata() == ERROR_SCHEMA
    ids = labels.column("item_id").to_pylist() + errors.column("item_id").to_pylist()
    assert len(ids) == len(set(ids)) == ran.drop_items  # every item exactly once
    truth = pq.read_table(ran.truth).to_pylist()
    bad = {r["item_id"] for r in truth if r["labels"] is None}
    assert set(errors.column("item_id").to_pylist()) == bad
    classes = card["classes"]
    for row in labels.to_pylist():
        assert len(row["scores"]) == len(classes)
        assert row["accepted"] == (not row["undecided_labels"])
        for i, c in enumerate(classes):  # the card's rule, class by class
            s = row["scores"][i]
            t, u = card["thresholds"][c], card["negative_thresholds"][c]
            assert (c in row["labels"]) == (s >= t - 1e-6)
            assert (c in row["undecided_labels"]) == (u + 1e-6 < s < t - 1e-6)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "multilabel"
    assert summary["counts"]["labeled"] == labels.num_rows
    assert summary["counts"]["accepted"] == sum(labels.column("accepted").to_pylist())
    counts = summary["multilabel"]["counts"]
    assert counts["total"] == labels.num_rows
    assert (run / "_SUCCESS").is_file()
    html = (run / "report.html").read_text()
    assert "Per-class decisions and thresholds" in html and "Label sets" in html


def _check_review(ran: Ran) -> None:
    review = Path(ran.labeled.run_uri) / "review"
    sample = pq.read_table(review / "sample.parquet").to_pylist()
    info = ran.labeled.summary["review"]
    assert len(sample) == info["size"] == sum(info["allocation"].values())
    strata = ran.labeled.summary["strata"]
    for r in sample:
        assert r["stratum"].split("/")[0] in ("acc", "rev")
        assert r["stratum_population"] == strata[r["stratum"]]
    config = (review / "labelstudio_config.xml").read_text()
    assert 'choice="multiple"' in config
    tasks = json.loads((review / "labelstudio.json").read_text())
    by_id = {r["item_id"]: r for r in sample}
    for task in tasks:
        row = by_id[task["data"]["item_id"]]
        choices = task["predictions"][0]["result"][0]["value"]["choices"] if row["labels"] else []
        assert sorted(choices) == sorted(row["labels"])


def test_images_end_to_end(images: Ran) -> None:
    _check_run(images, MULTILABEL_SCHEMA)
    _check_review(images)


def test_texts_end_to_end(texts: Ran) -> None:
    _check_run(texts, TEXT_MULTILABEL_SCHEMA)
    _check_review(texts)


def test_reviewed_sets_are_evaluated_and_train_the_next_model(images: Ran, tmp_path: Path) -> None:
    from raylabel.review import evaluate_run

    run = Path(images.labeled.run_uri)
    truth = {r["item_id"]: r["labels"] for r in pq.read_table(images.truth).to_pylist()}
    sample = pq.read_table(run / "review" / "sample.parquet").column("item_id").to_pylist()
    lines = [f"{i},{'|'.join(truth[i]) or '(none)'}" for i in sample]
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("item_id,true_labels\n" + "\n".join(lines) + "\n")
    at_run = [*images.overrides, f"run.run_id={images.labeled.run_id}"]
    result = evaluate_run(load_config([], [*at_run, f"review.reviewed={reviews}"]))
    ev = json.loads(Path(result.evaluation_uri).read_text())
    assert ev["task"] == "multilabel" and ev["n_reviewed"] == len(sample)
    overall = ev["overall"]  # exact-set accuracy of all rows: every sampled row counts
    assert 0.0 <= overall["lower"] <= overall["point"] <= overall["upper"] <= 1.0
    accepted = images.labeled.summary["counts"]["accepted"]
    for block in (ev["accepted"], ev["multilabel"]["micro_precision"]):
        if None in (block["lower"], block["point"], block["upper"]):
            assert accepted == 0 or block["n_reviewed"] < 2, block  # a tiny model's few
        else:
            assert 0.0 <= block["lower"] <= block["point"] <= block["upper"] <= 1.0
    fb = pq.read_table(result.feedback_uri)
    assert fb.num_rows == len(sample)
    # the reviewed sets are training rows of the next model (read from their kept copies)
    again = train(load_config([], [*images.overrides, "train.epochs=1", "train.gate_share=0"]))
    assert again.card.training["n_feedback"] == len(sample)
    assert again.card.task == "multilabel"
