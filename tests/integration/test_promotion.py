"""Issue #16 items 4 and 5: a retrained model becomes LATEST only if it is not worse than
the current one on reviewed items kept aside; `raylabel promote` overrides; a failed
retrain does not stop the night. Real models, real feedback files, local Ray."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raylabel.cli import main
from raylabel.config import Config, load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard, read_card, save_model_dir
from raylabel.models.image import build_image_model
from raylabel.models.predictor import load_model_dir
from raylabel.nightly import nightly
from raylabel.train import promotion

pytestmark = pytest.mark.slow
OPTS = StorageOptions()
CLASSES = ["circle", "square"]


def _constant_model(root: Path, cls: int, created_days_ago: float = 0.0) -> str:
    """A real model that predicts class `cls` for every image (its last bias dominates),
    published as LATEST."""
    version = layout.new_id("m-")
    model = build_image_model("small_cnn", len(CLASSES))
    with torch.no_grad():
        model.backbone.fc.bias[cls] = 50.0
    card = ModelCard(
        model_version=version,
        arch="small_cnn",
        modality="image",
        classes=CLASSES,
        preprocessing={"image_size": 32},
        thresholds={c: 0.6 for c in CLASSES},
        created_at=(layout.utc_now() - timedelta(days=created_days_ago)).isoformat(),
    )
    staged = root / "staging" / version
    save_model_dir(model, card, staged)
    layout.publish_model(staged, str(root / "out"), version, OPTS)
    return version


def _feedback(root: Path, drop_dir: Path, truth: Path, label: str) -> int:
    """Reviewed items that all say `label`, on images whose true class is the other one:
    the constant model that predicts `label` is right on every one of them."""
    with truth.open() as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in CLASSES and r["label"] != label]
    uris = [str(drop_dir / r["item_id"]) for r in rows]
    fb = root / "out" / "feedback" / "d1"
    fb.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {"item_id": [Path(u).name for u in uris], "uri": uris, "label": [label] * len(uris)}
    )
    pq.write_table(table, fb / "r-20260101T000000000000Z-000000-e1.parquet")
    return len(uris)


def _cfg(root: Path, *extra: str) -> Config:
    return load_config(
        [],
        [
            f"output.root={root / 'out'}",
            "model.image_size=32",
            "train.gate_share=0.5",
            "train.gate_min_items=10",
            *extra,
        ],
    )


def test_gate_refuses_a_worse_candidate_and_promotes_an_equal_one(tmp_path: Path) -> None:
    # ~100 reviewed items, half of them hashed (by uri, which holds tmp_path) into the gate:
    # ~50 gate items, so ">= 10" cannot miss by chance (80 drop items gave ~20 and, once, 9)
    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(2, 200, 32, classes=tuple(CLASSES), seed=7)
    )
    current = _constant_model(tmp_path, 0)
    _feedback(tmp_path, data.drop_dir, data.truth_path, CLASSES[0])
    cfg = _cfg(tmp_path)
    gate_rows = promotion.gate_items(cfg.output.root, OPTS, 0.5)
    assert gate_rows is not None and gate_rows.num_rows >= 10

    worse_dir = tmp_path / "worse"
    model = build_image_model("small_cnn", 2)
    with torch.no_grad():
        model.backbone.fc.bias[1] = 50.0  # always the other class
    worse_card = ModelCard("m-worse", "small_cnn", "image", CLASSES, {"image_size": 32},
                           thresholds={c: 0.6 for c in CLASSES})  # fmt: skip
    save_model_dir(model, worse_card, worse_dir)
    verdict = promotion.gate(cfg, worse_card, worse_dir)
    assert verdict["promoted"] is False and "accuracy 0.000 < 1.000" in verdict["reason"]
    assert verdict["current"] == current and verdict["items"] == gate_rows.num_rows
    cand, cur = verdict["candidate_scores"], verdict["current_scores"]
    assert cur["accuracy"]["value"] == 1.0 and cand["accuracy"]["value"] == 0.0
    assert 0 < cur["accuracy"]["low"] < 1.0 == cur["accuracy"]["high"]  # an interval
    assert verdict["accuracy_difference"]["value"] == -1.0

    same_dir = tmp_path / "same"
    cur_model, cur_card = load_model_dir(layout.fetch_model(cfg.output.root, current, OPTS))
    cur_card.model_version = "m-same"
    save_model_dir(cur_model, cur_card, same_dir)
    ok = promotion.gate(cfg, cur_card, same_dir)
    assert ok["promoted"] is True and ok["reason"].startswith("promoted: not worse")

    few = promotion.gate(_cfg(tmp_path, "train.gate_min_items=1000"), worse_card, worse_dir)
    assert few["promoted"] and "not compared" in few["reason"]


def test_nightly_keeps_the_current_model_when_the_retrain_is_worse_or_fails(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(12, 80, 32, classes=tuple(CLASSES), seed=8)
    )
    drops = tmp_path / "drops"
    drops.mkdir()
    data.drop_dir.rename(drops / "d1")
    current = _constant_model(tmp_path, 0, created_days_ago=30)  # due for a retrain
    n_fb = _feedback(tmp_path, drops / "d1", data.truth_path, CLASSES[0])
    common = [
        f"drops.root={drops}",
        f"seed.path={data.seed_dir}",
        "train.epochs=3",
        "train.min_steps=0",
        "train.calibration=holdout",
        "qc.min_support=5",
        "review.size=8",
    ]
    result = nightly(_cfg(tmp_path, *common))
    m = result.model
    assert m.retrained and m.candidate and m.candidate != current
    assert m.version == current  # labeled with the current model
    assert m.promotion["promoted"] is False, m.promotion
    assert layout.latest_model(str(tmp_path / "out"), OPTS) == current
    card = read_card(layout.fetch_model(str(tmp_path / "out"), m.candidate, OPTS))
    assert card.training["promotion"]["reason"].startswith("not promoted")
    assert card.training["n_feedback"] < n_fb  # the gate items did not train
    (outcome,) = result.outcomes
    assert outcome.status == "done"
    summary = json.loads(Path(result.summary_uri).read_text())
    assert summary["promotion"]["promoted"] is False and summary["candidate"] == m.candidate
    assert "not promoted" in "\n".join(result.summary_lines())

    # the manual override
    capsys.readouterr()
    assert main(["promote", m.candidate, f"output.root={tmp_path / 'out'}"]) == 0
    assert f"-> {m.candidate}" in capsys.readouterr().out
    assert layout.latest_model(str(tmp_path / "out"), OPTS) == m.candidate
    assert main(["promote", "m-nope", f"output.root={tmp_path / 'out'}"]) == 2

    # a retrain that fails: the night goes on with the current model
    layout.point_latest_model(str(tmp_path / "out"), current, OPTS)
    (drops / "d1" / "late.png").write_bytes(
        (data.seed_dir / "circle").iterdir().__next__().read_bytes()
    )
    broken = [
        c if not c.startswith("seed.path=") else f"seed.path={tmp_path / 'nope'}" for c in common
    ]
    night = nightly(_cfg(tmp_path, *broken))
    assert night.model.failure and "seed.path" in night.model.failure
    assert night.model.version == current
    assert [(o.drop, o.status) for o in night.outcomes] == [("d1", "done")]
    assert json.loads(Path(night.summary_uri).read_text())["retrain_failed"]
    assert "retrain failed" in "\n".join(night.summary_lines())
