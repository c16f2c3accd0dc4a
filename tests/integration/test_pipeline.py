"""Integration: train small_cnn with 2 Ray Train workers, label a drop with bad files,
redraw the review sample, evaluate reviews — all on a real local Ray cluster."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raylabel.config import Config, load_config
from raylabel.demo.images import ImageDemoPaths, ImageDemoSpec, write_image_demo
from raylabel.io.schema import ERROR_SCHEMA, LABEL_SCHEMA
from raylabel.label import LabelResult, label
from raylabel.train import TrainResult, train

pytestmark = pytest.mark.slow
CLASSES = ("circle", "square", "triangle", "cross")


@dataclass
class Trained:
    cfg: Config
    data: ImageDemoPaths
    trained: TrainResult
    labeled: LabelResult
    root: Path


def _overrides(data: ImageDemoPaths, out: Path) -> list[str]:
    return [
        f"seed.path={data.seed_dir}",
        f"drop.path={data.drop_dir}",
        f"output.root={out}",
        "drop.name=tiny",
        "model.image_size=32",
        "train.epochs=2",
        "train.min_steps=0",
        "train.num_workers=2",
        "train.batch_size=32",
        "qc.min_support=5",
        "review.size=24",
        "review.uncertain_size=10",
    ]


@pytest.fixture(scope="module")
def trained(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("pipeline")
    spec = ImageDemoSpec(n_seed_per_class=24, n_drop=60, image_size=40, classes=CLASSES)
    data = write_image_demo(root / "data", spec)
    cfg = load_config([], _overrides(data, root / "out"))
    return Trained(cfg, data, train(cfg), label(cfg), root)


def test_model_card_matches_seed_folders(trained: Trained) -> None:
    card = json.loads((Path(trained.trained.model_uri) / "model_card.json").read_text())
    assert card["classes"] == sorted(p.name for p in trained.data.seed_dir.iterdir())
    assert card["arch"] == "small_cnn"
    assert card["training"]["num_workers"] == 2
    assert len(card["training"]["history"]) == 2
    assert card["seed_fingerprint"]
    assert set(card["thresholds"]) == set(card["classes"])
    assert card["temperature"] > 0
    assert (Path(trained.trained.model_uri) / "model.safetensors").is_file()
    latest = (trained.root / "out" / "models" / "LATEST").read_text().strip()
    assert latest == trained.trained.model_version


def test_labels_schema_counts_and_errors(trained: Trained) -> None:
    run = Path(trained.labeled.run_uri)
    labels = pq.read_table(run / "labels")
    errors = pq.read_table(run / "errors")
    assert labels.schema.remove_metadata() == LABEL_SCHEMA
    assert errors.schema.remove_metadata() == ERROR_SCHEMA
    n_in = len(list(trained.data.drop_dir.iterdir()))
    assert n_in == 62
    assert labels.num_rows + errors.num_rows == n_in
    ids = labels.column("item_id").to_pylist() + errors.column("item_id").to_pylist()
    assert len(set(ids)) == n_in  # every item exactly once
    with open(trained.data.truth_path) as f:
        bad = {r["item_id"] for r in csv.DictReader(f) if not r["label"]}
    assert set(errors.column("item_id").to_pylist()) == bad
    assert all(e and "\n" not in e for e in errors.column("error").to_pylist())
    assert (run / "_SUCCESS").is_file()
    assert (run.parent / "LATEST").read_text().strip() == trained.labeled.run_id
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"]["input"] == n_in
    assert summary["counts"]["errors"] == 2
    assert sum(summary["per_class"][c]["labeled"] for c in summary["classes"]) == n_in - 2
    acc = labels.column("accepted").to_pylist()
    conf = labels.column("confidence").to_pylist()
    thr = labels.column("threshold").to_pylist()
    assert all(a == (c >= t) for a, c, t in zip(acc, conf, thr, strict=True))


def test_review_outputs(trained: Trained) -> None:
    review = Path(trained.labeled.run_uri) / "review"
    sample = pq.read_table(review / "sample.parquet")
    assert 0 < sample.num_rows <= 24
    for col in ("stratum", "stratum_population", "weight", "inclusion_prob"):
        assert col in sample.column_names
    tasks = json.loads((review / "labelstudio.json").read_text())
    assert len(tasks) == sample.num_rows
    pred = tasks[0]["predictions"][0]
    assert {"model_version", "score", "result"} <= set(pred)
    assert pred["result"][0]["value"]["choices"][0] in CLASSES
    assert (review / "sample.csv").read_text().startswith("item_id,")
    uncertain = pq.read_table(review / "uncertain.parquet")
    assert uncertain.num_rows == 10
    report = (Path(trained.labeled.run_uri) / "report.html").read_text()
    assert "data:image/png;base64," in report


def test_rerun_is_a_noop_and_force_makes_a_new_run(trained: Trained) -> None:
    again = label(trained.cfg)
    assert again.skipped and again.run_id == trained.labeled.run_id
    forced_cfg = load_config(
        [], [*_overrides(trained.data, trained.root / "out"), "run.force=true"]
    )
    forced = label(forced_cfg)
    assert not forced.skipped and forced.run_id != trained.labeled.run_id
    runs = trained.root / "out" / "runs" / "tiny"
    assert (runs / "LATEST").read_text().strip() == forced.run_id
    first = pq.read_table(Path(trained.labeled.run_uri) / "labels")
    assert first.num_rows == trained.labeled.summary["counts"]["labeled"]  # untouched


def test_sample_is_deterministic_and_evaluate_estimates(trained: Trained) -> None:
    from raylabel.review import evaluate_run, resample

    out = trained.root / "out"
    base = [*_overrides(trained.data, out), f"run.run_id={trained.labeled.run_id}"]
    review = Path(trained.labeled.run_uri) / "review"
    before = pq.read_table(review / "sample.parquet").column("item_id").to_pylist()
    resample(load_config([], base))
    after = pq.read_table(review / "sample.parquet").column("item_id").to_pylist()
    assert before == after
    with open(trained.data.truth_path) as f:
        truth = {r["item_id"]: r["label"] for r in csv.DictReader(f)}
    reviews = trained.root / "reviews.csv"
    reviews.write_text("item_id,true_label\n" + "".join(f"{i},{truth[i]}\n" for i in after))
    lines = evaluate_run(load_config([], [*base, f"review.reviewed={reviews}"])).summary_lines()
    assert any("overall" in ln for ln in lines)
    ev = json.loads((Path(trained.labeled.run_uri) / "evaluation.json").read_text())
    assert ev["n_reviewed"] == len(after)
    assert 0.0 <= ev["overall"]["lower"] <= ev["overall"]["point"] <= ev["overall"]["upper"] <= 1
    fb = pq.read_table(out / "feedback" / "tiny" / f"{trained.labeled.run_id}.parquet")
    assert fb.num_rows == len(after)


def test_evaluate_rejects_unknown_ids_and_classes(trained: Trained) -> None:
    from raylabel.errors import ReviewError
    from raylabel.review import evaluate_run

    base = [*_overrides(trained.data, trained.root / "out"), f"run.run_id={trained.labeled.run_id}"]
    bad_id = trained.root / "bad_id.csv"
    bad_id.write_text("item_id,true_label\nnot-in-sample.png,circle\n")
    with pytest.raises(ReviewError, match="not in the review sample"):
        evaluate_run(load_config([], [*base, f"review.reviewed={bad_id}"]))
    sample = pq.read_table(Path(trained.labeled.run_uri) / "review" / "sample.parquet")
    bad_cls = trained.root / "bad_cls.csv"
    bad_cls.write_text(f"item_id,true_label\n{sample.column('item_id')[0]},dodecahedron\n")
    with pytest.raises(ReviewError, match="dodecahedron"):
        evaluate_run(load_config([], [*base, f"review.reviewed={bad_cls}"]))
