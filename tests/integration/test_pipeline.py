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
    run = Path(trained.labeled.run_uri)
    review = run / "review"
    sample = pq.read_table(review / "sample.parquet").to_pylist()
    info = trained.labeled.summary["review"]
    # exactly the allocation: review.size=24 over the strata the label pass counted
    assert len(sample) == info["size"] == sum(info["allocation"].values()) == 24
    strata = trained.labeled.summary["strata"]
    for key, n_h in info["allocation"].items():
        rows = [r for r in sample if r["stratum"] == key]
        assert len(rows) == n_h
        for r in rows:
            assert r["stratum_population"] == strata[key]
            assert r["inclusion_prob"] == pytest.approx(n_h / strata[key])
        if rows:  # a stratum's weights add up to its population (unbiased totals)
            assert sum(r["weight"] for r in rows) == pytest.approx(strata[key])
    labels = {r["item_id"]: r for r in pq.read_table(run / "labels").to_pylist()}
    for r in sample:  # every sampled row is the labeled row, unchanged
        assert labels[r["item_id"]]["label"] == r["label"]
        assert labels[r["item_id"]]["confidence"] == pytest.approx(r["confidence"])
    tasks = json.loads((review / "labelstudio.json").read_text())
    assert [t["data"]["item_id"] for t in tasks] == [r["item_id"] for r in sample]
    for task, row in zip(tasks, sample, strict=True):
        (pred,) = task["predictions"]
        assert pred["model_version"] == trained.trained.model_version
        assert pred["result"][0]["value"]["choices"] == [row["label"]]
        assert pred["score"] == pytest.approx(row["confidence"], abs=1e-6)
    csv_rows = list(csv.DictReader((review / "sample.csv").open()))
    assert [c["item_id"] for c in csv_rows] == [r["item_id"] for r in sample]
    uncertain = pq.read_table(review / "uncertain.parquet")
    assert uncertain.num_rows == 10
    report = (run / "report.html").read_text()
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
    run_dir = Path(trained.labeled.run_uri)
    base = [*_overrides(trained.data, out), f"run.run_id={trained.labeled.run_id}"]
    committed = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    before = pq.read_table(run_dir / "review" / "sample.parquet").column("item_id").to_pylist()
    redraw = resample(load_config([], base))
    redrawn = Path(redraw.folder)
    assert redrawn.parent == run_dir / "redraws" and (redrawn / "_SUCCESS").is_file()
    after = pq.read_table(redrawn / "review" / "sample.parquet").column("item_id").to_pylist()
    assert before == after  # same seed, same sample
    with open(trained.data.truth_path) as f:
        truth = {r["item_id"]: r["label"] for r in csv.DictReader(f)}
    reviews = trained.root / "reviews.csv"
    reviews.write_text("item_id,true_label\n" + "".join(f"{i},{truth[i]}\n" for i in after))
    result = evaluate_run(load_config([], [*base, f"review.reviewed={reviews}"]))
    assert any("overall" in ln for ln in result.summary_lines())
    ev_dir = Path(result.evaluation_uri).parent
    assert ev_dir.parent == run_dir / "evaluations" and (ev_dir / "_SUCCESS").is_file()
    ev = json.loads(Path(result.evaluation_uri).read_text())
    assert ev["n_reviewed"] == len(after)
    assert 0.0 <= ev["overall"]["lower"] <= ev["overall"]["point"] <= ev["overall"]["upper"] <= 1
    fb = pq.read_table(result.feedback_uri)
    assert Path(result.feedback_uri).name == f"{trained.labeled.run_id}-{ev_dir.name}.parquet"
    assert fb.num_rows == len(after)
    # the committed run itself never changed: every file it had is byte for byte the same
    for path, data in committed.items():
        assert path.read_bytes() == data, path


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
