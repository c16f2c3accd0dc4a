"""Cross-fitted calibration end to end on a real local Ray cluster: the card's temperature
and thresholds equal a direct recomputation from the kept fold models; the final model
trains on every seed item; the fold ensemble labels with the mean of calibrated probs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from thresholdutil import direct_rule

from raylabel.config import Config, load_config
from raylabel.demo.images import ImageDemoPaths, ImageDemoSpec, write_image_demo
from raylabel.fit.folds import fold_assignment
from raylabel.fit.loop import effective_epochs
from raylabel.inputs import sources
from raylabel.inputs.decode import decode_image
from raylabel.label import label
from raylabel.models.predictor import Predictor
from raylabel.stats import calibration as calibrate
from raylabel.train import TrainResult, train

pytestmark = pytest.mark.slow
CLASSES = ("circle", "square", "triangle")
FOLDS = 3


@dataclass
class Fitted:
    cfg: Config
    data: ImageDemoPaths
    trained: TrainResult
    model_dir: Path


@pytest.fixture(scope="module")
def fitted(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    root = tmp_path_factory.mktemp("crossfit")
    spec = ImageDemoSpec(n_seed_per_class=16, n_drop=40, image_size=32, classes=CLASSES)
    data = write_image_demo(root / "data", spec)
    cfg = load_config(
        [],
        [
            f"seed.path={data.seed_dir}",
            f"drop.path={data.drop_dir}",
            f"output.root={root / 'out'}",
            "model.image_size=32",
            "train.calibration=crossfit",
            f"train.calibration_folds={FOLDS}",
            "train.epochs=1",
            "train.min_steps=12",
            "train.batch_size=16",
            "train.num_workers=1",
            "qc.target_precision=0.6",
            "qc.min_support=5",
            "review.size=10",
        ],
    )
    trained = train(cfg)
    return Fitted(cfg, data, trained, Path(trained.model_uri))


def _seed_pixels(f: Fitted) -> tuple[list[str], list[str], np.ndarray]:
    plan = sources.plan_seed(f.cfg)
    assert plan.listing is not None
    ids = plan.listing.column("item_id").to_pylist()
    labels = plan.listing.column("label").to_pylist()
    uris = plan.listing.column("uri").to_pylist()
    x = np.stack([decode_image(Path(u).read_bytes(), 32, 10**8) for u in uris])
    return ids, labels, x


def test_card_thresholds_equal_a_direct_recomputation(fitted: Fitted) -> None:
    card = json.loads((fitted.model_dir / "model_card.json").read_text())
    ids, labels, x = _seed_pixels(fitted)
    assert card["training"]["calibration"]["method"] == "crossfit"
    assert card["training"]["calibration"]["items"] == len(ids) == 48
    assert card["training"]["n_train"] == 48 and card["training"]["n_val"] == 0
    assert card["validation"]["n"] == 48
    assert card["ensemble"]["members"] == [f"folds/{i}" for i in range(FOLDS)]
    # every seed item predicted by the one fold model that never trained on it
    fold = fold_assignment(ids, labels, FOLDS, fitted.cfg.train.seed)
    oof = np.zeros((len(ids), len(CLASSES)))
    for i in range(FOLDS):
        member = Predictor.from_dir(fitted.model_dir / "folds" / str(i))
        assert member.card.classes == card["classes"]
        oof[fold == i] = member.logits(x[fold == i])
    y = np.array([card["classes"].index(v) for v in labels])
    t = calibrate.fit_temperature(oof, y)
    assert card["temperature"] == pytest.approx(t, rel=1e-3)
    probs = calibrate.softmax(oof, card["temperature"])
    pred, conf = probs.argmax(1), probs.max(1)
    thr, src = direct_rule(pred, conf, pred == y, len(CLASSES), 0.6, 0.95, 5)
    assert [card["threshold_source"][c] for c in card["classes"]] == src
    assert [card["thresholds"][c] for c in card["classes"]] == pytest.approx(thr, abs=1e-6)
    kept = pq.read_table(fitted.model_dir / "calibration.parquet")
    assert kept.num_rows == 48
    assert kept.column("confidence").to_numpy() == pytest.approx(conf, abs=1e-6)


def test_min_steps_schedule_gives_a_tiny_seed_its_steps(fitted: Fitted) -> None:
    card = fitted.trained.card
    # 48 items, batch 16, one worker: 3 steps an epoch; 12 steps need 4 epochs, not 1
    assert effective_epochs(1, 48, 1, 16, 12) == 4
    assert card.training["epochs_run"] == 4
    assert [h["epoch"] for h in card.training["history"]] == [1, 2, 3, 4]


def test_summary_lines_say_how_the_model_was_calibrated(fitted: Fitted) -> None:
    text = "\n".join(fitted.trained.summary_lines())
    assert f"calibration ({FOLDS}-fold cross-fitted): n=48" in text


def test_ensemble_labels_with_the_mean_of_calibrated_fold_probabilities(fitted: Fitted) -> None:
    cfg = load_config(
        [],
        [
            f"seed.path={fitted.data.seed_dir}",
            f"drop.path={fitted.data.drop_dir}",
            f"output.root={fitted.cfg.output.root}",
            "drop.name=ens",
            "infer.ensemble=always",
            "review.size=10",
        ],
    )
    result = label(cfg)
    assert result.summary["scorer"] == "ensemble"
    rows = pq.read_table(Path(result.run_uri) / "labels").to_pylist()
    rows = sorted(rows, key=lambda r: r["item_id"])[:12]
    card = fitted.trained.card
    x = np.stack(
        [decode_image((fitted.data.drop_dir / r["item_id"]).read_bytes(), 32, 10**8) for r in rows]
    )
    members = [Predictor.from_dir(fitted.model_dir / "folds" / str(i)) for i in range(FOLDS)]
    mean = np.mean([calibrate.softmax(m.logits(x), card.temperature) for m in members], axis=0)
    got = np.array([r["confidence"] for r in rows])
    assert got == pytest.approx(mean.max(1), abs=1e-5)
    assert [r["label"] for r in rows] == [card.classes[i] for i in mean.argmax(1)]
