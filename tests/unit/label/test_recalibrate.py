"""Reviewed items tighten the thresholds: label-time re-derivation against a direct
computation, on files laid out exactly as `train` and `evaluate` write them (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylabel.io.storage import StorageOptions
from raylabel.label import recalibrate
from raylabel.models.card import CALIBRATION_FILE, ModelCard
from raylabel.stats.thresholds import Evidence, choose_thresholds, thresholds_from_evidence

CLASSES = ["cat", "dog", "owl"]
TARGET = 0.95


def _card(root: Path, version: str, seed: int = 0) -> tuple[ModelCard, Evidence]:
    """A model dir holding a card and calibration.parquet of 40 items per class: too few
    for any class to reach 0.95 alone (40 of 40 correct bounds at 0.928)."""
    rng = np.random.default_rng(seed)
    pred = np.repeat(np.arange(3), 40)
    conf = np.round(rng.uniform(0.7, 1.0, pred.size), 3)
    correct = conf > 0.75
    y = np.where(correct, pred, (pred + 1) % 3)
    probs = np.full((pred.size, 3), 0.0)
    probs[np.arange(pred.size), pred] = conf
    probs[np.arange(pred.size), (pred + 1) % 3] = 1 - conf
    thr = choose_thresholds(probs, y, CLASSES, TARGET, 0.95, 30)
    card = ModelCard(
        model_version=version,
        arch="small_cnn",
        modality="image",
        classes=CLASSES,
        preprocessing={},
        thresholds=thr.thresholds,
        threshold_source=thr.source,
        global_threshold=thr.global_threshold,
        target_precision=TARGET,
        confidence_level=0.95,
        training={"threshold_detail": thr.to_json(), "calibration": {"items": int(pred.size)}},
    )
    d = root / "models" / version
    d.mkdir(parents=True)
    (d / "model_card.json").write_text(json.dumps(card.to_json()))
    pq.write_table(
        pa.table(
            {
                "item_id": [f"s{i}" for i in range(pred.size)],
                "label_index": pa.array(y, pa.int32()),
                "predicted_index": pa.array(pred, pa.int32()),
                "confidence": conf,
                "weight": np.ones(pred.size),
                "source": ["seed"] * pred.size,
            }
        ),
        d / CALIBRATION_FILE,
    )
    return card, Evidence(pred, conf, correct, np.ones(pred.size))


def _feedback(root: Path, drop: str, run_id: str, rows: list[dict]) -> None:
    d = root / "feedback" / drop
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), d / f"{run_id}.parquet")


def _review_rows(version: str, seed: int, n: int, weight: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pred = CLASSES[i % 3]
        conf = float(np.round(rng.uniform(0.8, 1.0), 3))
        out.append(
            {
                "item_id": f"x{seed}-{i}",
                "uri": f"s3://b/{seed}/{i}.png",
                "label": pred if conf > 0.82 else CLASSES[(i + 1) % 3],
                "predicted": pred,
                "drop": "night",
                "run_id": f"r{seed}",
                "model_version": version,
                "confidence": conf,
                "weight": weight * (1 + i % 2),  # two strata with different weights
                "sampled": True,
                "scorer": "model",
            }
        )
    return out


def test_reviewed_items_change_thresholds_as_specified(tmp_path: Path) -> None:
    card, seed_ev = _card(tmp_path, "m1")
    root, model_dir, opts = str(tmp_path), str(tmp_path / "models" / "m1"), StorageOptions()
    thr, info = recalibrate.label_thresholds(root, model_dir, card, "model", 30, opts)
    assert thr is None and info["source"] == "card" and info["reviewed_items"] == 0
    assert set(card.threshold_source.values()) == {"global"}

    night1 = _review_rows("m1", 1, 150, weight=20.0)
    night2 = _review_rows("m1", 2, 90, weight=5.0)
    _feedback(tmp_path, "night", "r1", night1)
    _feedback(tmp_path, "night", "r2", night2)
    # ignored: another model, an item reviewed outside the probability sample, the ensemble
    other = _review_rows("m0", 3, 50, weight=1.0)
    outside = [{**r, "item_id": f"o{i}", "sampled": False} for i, r in enumerate(night1[:30])]
    ens = [{**r, "item_id": f"e{i}", "scorer": "ensemble"} for i, r in enumerate(night1[:30])]
    _feedback(tmp_path, "night", "r0", other + outside + ens)

    thr, info = recalibrate.label_thresholds(root, model_dir, card, "model", 30, opts)
    assert info["source"] == "card+reviews"
    assert info["reviewed_items"] == 240
    assert info["calibration_items"] == 120
    assert info["reviewed_runs"] == {"night/r1.parquet": 150, "night/r2.parquet": 90}

    # direct computation: per-run weights rescaled to average 1, appended to the card's items
    def run_ev(rows: list[dict]) -> Evidence:
        w = np.array([r["weight"] for r in rows])
        return Evidence(
            np.array([CLASSES.index(r["predicted"]) for r in rows]),
            np.array([r["confidence"] for r in rows]),
            np.array([r["label"] == r["predicted"] for r in rows]),
            w / w.mean(),
        )

    want = thresholds_from_evidence(
        seed_ev.concat(run_ev(night1)).concat(run_ev(night2)), CLASSES, TARGET, 0.95, 30
    )
    assert thr == pytest.approx(want.thresholds)
    assert info["threshold_source"] == want.source
    # more evidence: classes that could only borrow the pooled threshold now stand alone
    assert "class" in want.source.values()
    assert thr != card.thresholds


def test_a_newer_review_of_the_same_item_replaces_the_older(tmp_path: Path) -> None:
    card, _ = _card(tmp_path, "m1")
    rows = _review_rows("m1", 1, 60, weight=3.0)
    _feedback(tmp_path, "night", "r1", rows)
    flipped = [{**r, "label": CLASSES[(CLASSES.index(r["predicted"]) + 1) % 3]} for r in rows]
    _feedback(tmp_path, "night", "r2", flipped)  # the same items, reviewed again later
    ev, per_run = recalibrate.reviewed_evidence(str(tmp_path), card, "model", StorageOptions())
    assert len(ev) == 60
    assert per_run == {"night/r2.parquet": 60}
    assert not ev.correct.any()


def test_models_without_calibration_file_keep_the_card(tmp_path: Path) -> None:
    card, _ = _card(tmp_path, "m1")
    (tmp_path / "models" / "m1" / CALIBRATION_FILE).unlink()
    _feedback(tmp_path, "night", "r1", _review_rows("m1", 1, 30, weight=2.0))
    thr, info = recalibrate.label_thresholds(
        str(tmp_path), str(tmp_path / "models" / "m1"), card, "model", 30, StorageOptions()
    )
    assert thr is None and info["source"] == "card"
    assert "30 reviewed items unused" in info["note"]
