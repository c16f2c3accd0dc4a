"""Self-training (raylabel.pseudo): the precision gate, the selection, and the trainer using it.

Committed runs are built directly with the layout helpers (labels, summary, evaluation,
_SUCCESS, LATEST) so the gate and selection are tested on known answers without labeling.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raylabel.config import Config, load_config
from raylabel.errors import ConfigError
from raylabel.fit.loop import weighted_loss
from raylabel.io import layout, storage
from raylabel.models.card import card_line, pseudo_summary
from raylabel.train import pseudo

OPTS = storage.StorageOptions()
CLASSES = ["circle", "square"]


def make_run(
    root: Path,
    drop: str,
    run_id: str,
    rows: list[tuple[str, str, bool]],
    accepted_est: dict[str, float] | None,
    created_at: str,
    evaluated_at: str = "2026-11-28T00:00:00+00:00",
    kind: str = "folder",
) -> layout.RunLayout:
    """A committed run whose labels are `rows` = (item_id, label, accepted)."""
    run = layout.RunLayout(str(root), drop, run_id)
    labels = Path(run.labels_dir)
    labels.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "item_id": [r[0] for r in rows],
                "uri": [f"/data/{drop}/{r[0]}" for r in rows],
                "label": [r[1] for r in rows],
                "accepted": [r[2] for r in rows],
            }
        ),
        labels / "part-0.parquet",
    )
    summary = {"created_at": created_at, "input": {"kind": kind}, "modality": "image"}
    storage.write_json(run.path("summary.json"), summary, OPTS)
    if accepted_est is not None:
        est = {"n_reviewed": 80, "confidence_level": 0.95, **accepted_est}
        body = {"accepted": est, "evaluated_at": evaluated_at}
        storage.write_json(run.path("evaluations", "e-1", "evaluation.json"), body, OPTS)
        layout.commit_revision(run, "evaluations", "e-1", OPTS)
    layout.commit_run(run, OPTS, {})
    return run


def cfg_for(root: Path, *extra: str) -> Config:
    return load_config(
        [],
        [
            f"output.root={root}",
            "qc.target_precision=0.95",
            "train.pseudo_labels.enabled=true",
            *extra,
        ],
    )


def rows_for(prefix: str, n_circle: int, n_square: int, n_rejected: int = 0) -> list:
    rows = [(f"{prefix}c{i:03d}", "circle", True) for i in range(n_circle)]
    rows += [(f"{prefix}s{i:03d}", "square", True) for i in range(n_square)]
    rows += [(f"{prefix}r{i:03d}", "circle", False) for i in range(n_rejected)]
    return rows


def test_refused_when_lower_bound_below_target(tmp_path: Path) -> None:
    make_run(
        tmp_path,
        "d1",
        "r1",
        rows_for("a", 20, 20),
        {"point": 0.93, "lower": 0.87, "upper": 0.97},
        "2026-11-27T00:00:00+00:00",
    )
    sel = pseudo.select(cfg_for(tmp_path), CLASSES, 100, set(), OPTS)
    assert sel.status == "refused" and sel.used == 0 and sel.table is None
    assert sel.reason == "accepted precision lower bound 0.870 < target 0.95 (run d1/r1)"
    card = sel.to_card()
    assert card["gate"]["passed"] is False and card["gate"]["lower"] == 0.87
    assert card_line(card) == f"pseudo-labels refused: {sel.reason}"


def test_point_criterion_and_no_estimate(tmp_path: Path) -> None:
    est = {"point": 0.97, "lower": 0.90, "upper": 0.99}
    make_run(tmp_path, "d1", "r1", rows_for("a", 5, 5), est, "2026-11-27T00:00:00+00:00")
    assert pseudo.select(cfg_for(tmp_path), CLASSES, 100, set(), OPTS).status == "refused"
    sel = pseudo.select(
        cfg_for(tmp_path, "train.pseudo_labels.gate=point"), CLASSES, 100, set(), OPTS
    )
    assert sel.status == "used" and sel.used == 10
    assert sel.gate is not None and "point estimate 0.970 >= target 0.95" in sel.gate.reason

    bare = tmp_path / "bare"
    make_run(bare, "d1", "r1", rows_for("a", 5, 5), None, "2026-11-27T00:00:00+00:00")
    sel = pseudo.select(cfg_for(bare), CLASSES, 100, set(), OPTS)
    assert sel.status == "refused" and "no review-based estimate" in sel.reason
    loose = cfg_for(bare, "train.pseudo_labels.require_estimate=false")
    sel = pseudo.select(loose, CLASSES, 100, set(), OPTS)
    assert sel.status == "used" and sel.used == 10 and "ungated" in sel.reason
    assert pseudo.select(
        load_config([], [f"output.root={bare}"]), CLASSES, 9, set(), OPTS
    ).status == ("disabled")


def test_latest_estimate_decides_and_failing_runs_never_contribute(tmp_path: Path) -> None:
    good = {"point": 0.99, "lower": 0.97, "upper": 1.0}
    bad = {"point": 0.92, "lower": 0.85, "upper": 0.96}
    make_run(
        tmp_path,
        "d1",
        "r1",
        rows_for("a", 10, 10),
        good,
        "2026-11-26T00:00:00+00:00",
        evaluated_at="2026-11-26T12:00:00+00:00",
    )
    make_run(
        tmp_path,
        "d2",
        "r2",
        rows_for("b", 10, 10),
        bad,
        "2026-11-27T00:00:00+00:00",
        evaluated_at="2026-11-27T12:00:00+00:00",
    )
    sel = pseudo.select(cfg_for(tmp_path), CLASSES, 100, set(), OPTS)
    assert sel.status == "refused" and "(run d2/r2)" in sel.reason  # the newest review rules
    # a newer, passing review re-opens the gate, but d2's own failing estimate keeps it out
    make_run(
        tmp_path,
        "d3",
        "r3",
        rows_for("c", 10, 10),
        good,
        "2026-11-28T00:00:00+00:00",
        evaluated_at="2026-11-28T12:00:00+00:00",
    )
    sel = pseudo.select(cfg_for(tmp_path), CLASSES, 100, set(), OPTS)
    assert sel.status == "used" and sel.per_run == {"d3/r3": 20, "d1/r1": 20}
    assert sel.skipped_runs == {"d2/r2": "own accepted precision lower bound 0.850 < target 0.95"}
    only_newest = cfg_for(tmp_path, "train.pseudo_labels.max_runs=1")
    assert pseudo.select(only_newest, CLASSES, 100, set(), OPTS).per_run == {"d3/r3": 20}


def test_selection_balanced_capped_deterministic_and_excluding(tmp_path: Path) -> None:
    good = {"point": 0.99, "lower": 0.97, "upper": 1.0}
    make_run(
        tmp_path,
        "d1",
        "r1",
        rows_for("a", 60, 12, n_rejected=30),
        good,
        "2026-11-27T00:00:00+00:00",
    )
    make_run(
        tmp_path, "dp", "rp", rows_for("p", 5, 5), good, "2026-11-26T00:00:00+00:00", kind="parquet"
    )
    # a reviewed item (feedback) and a seed item are never pseudo-labeled
    fb = tmp_path / "feedback" / "d1"
    fb.mkdir(parents=True)
    pq.write_table(
        pa.table({"item_id": ["x"], "uri": ["/data/d1/as000"], "label": ["circle"]}),
        fb / "r1.parquet",
    )
    cfg = cfg_for(tmp_path)
    sel = pseudo.select(cfg, CLASSES, 1000, {"/data/d1/ac000"}, OPTS)
    assert sel.skipped_runs == {"dp/rp": "input kind 'parquet': items carry no re-readable uri"}
    assert sel.candidates == {"circle": 59, "square": 11}
    assert sel.per_class == {"circle": 11, "square": 11}  # ratio 1.0 x the smallest class
    assert sel.table is not None
    uris = set(sel.table.column("uri").to_pylist())
    assert not uris & {"/data/d1/ac000", "/data/d1/as000"}
    assert not any("/ar" in u for u in uris)  # needs-review rows are never used
    assert sel.table.column("item_id").to_pylist()[0].startswith("pseudo/d1/r1#")
    again = pseudo.select(cfg, CLASSES, 1000, {"/data/d1/ac000"}, OPTS)
    assert again.table is not None and again.table.equals(sel.table)
    other = pseudo.select(
        cfg_for(tmp_path, "train.seed=7"), CLASSES, 1000, {"/data/d1/ac000"}, OPTS
    )
    assert other.table is not None and not other.table.equals(sel.table)

    ratio = pseudo.select(
        cfg_for(tmp_path, "train.pseudo_labels.max_per_class_ratio=2"), CLASSES, 1000, set(), OPTS
    )
    assert ratio.per_class == {"circle": 22, "square": 11}  # 2 x 11
    capped = pseudo.select(
        cfg_for(
            tmp_path, "train.pseudo_labels.max_items=9", "train.pseudo_labels.max_per_class_ratio=5"
        ),
        CLASSES,
        1000,
        set(),
        OPTS,
    )
    assert capped.cap_total == 9 and capped.per_class == {"circle": 4, "square": 4}
    by_seed = pseudo.select(
        cfg_for(
            tmp_path,
            "train.pseudo_labels.max_seed_ratio=0.5",
            "train.pseudo_labels.max_per_class_ratio=5",
        ),
        CLASSES,
        20,
        set(),
        OPTS,
    )
    assert by_seed.cap_total == 10 and by_seed.used == 10


def test_weighted_loss_known_answers() -> None:
    losses = torch.tensor([1.0, 3.0, 5.0])
    assert weighted_loss(losses, None).item() == pytest.approx(3.0)
    assert weighted_loss(losses, torch.ones(3)).item() == pytest.approx(3.0)
    assert weighted_loss(losses, torch.tensor([1.0, 1.0, 0.0])).item() == pytest.approx(2.0)
    # a pseudo-label at weight 0.5 counts half: (1 + 3 + 0.5*5) / 2.5
    assert weighted_loss(losses, torch.tensor([1.0, 1.0, 0.5])).item() == pytest.approx(2.6)


def test_config_keys_are_validated() -> None:
    for key, value in (
        ("weight", "0"),
        ("max_items", "0"),
        ("max_per_class_ratio", "0.5"),
        ("max_runs", "0"),
        ("gate", "mean"),
        ("max_seed_ratio", "0"),
    ):
        with pytest.raises(ConfigError, match=f"train.pseudo_labels.{key}"):
            load_config([], [f"train.pseudo_labels.{key}={value}"])


@pytest.mark.slow
def test_train_with_pseudo_labels_records_them_in_the_card(
    ray_cluster: None, tmp_path: Path
) -> None:
    from raylabel.demo.images import ImageDemoSpec, write_image_demo
    from raylabel.train import train

    spec = ImageDemoSpec(
        n_seed_per_class=10,
        n_drop=40,
        image_size=32,
        classes=tuple(CLASSES),
        n_bad_items=0,
        mixed_formats=False,
    )
    data = write_image_demo(tmp_path / "data", spec)
    out = tmp_path / "out"
    with data.truth_path.open() as fh:
        truth = [(r["item_id"], r["label"]) for r in csv.DictReader(fh)]
    run = layout.RunLayout(str(out), "drop", "r1")
    Path(run.labels_dir).mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "item_id": [i for i, _ in truth],
                "uri": [str(data.drop_dir / i) for i, _ in truth],
                "label": [lab for _, lab in truth],
                "accepted": [True] * len(truth),
            }
        ),
        Path(run.labels_dir) / "part-0.parquet",
    )
    storage.write_json(
        run.path("summary.json"),
        {
            "created_at": "2026-11-28T00:00:00+00:00",
            "input": {"kind": "folder"},
            "modality": "image",
        },
        OPTS,
    )
    storage.write_json(
        run.path("evaluations", "e-1", "evaluation.json"),
        {
            "accepted": {"point": 0.99, "lower": 0.96, "upper": 1.0, "n_reviewed": 40},
            "evaluated_at": "2026-11-28T01:00:00+00:00",
        },
        OPTS,
    )
    layout.commit_revision(run, "evaluations", "e-1", OPTS)
    layout.commit_run(run, OPTS, {})
    cfg = load_config(
        [],
        [
            f"seed.path={data.seed_dir}",
            f"output.root={out}",
            "model.image_size=32",
            "train.epochs=1",
            "train.min_steps=0",
            "train.num_workers=1",
            "train.batch_size=16",
            "qc.min_support=5",
            "train.pseudo_labels.enabled=true",
            "train.pseudo_labels.weight=0.5",
        ],
    )
    result = train(cfg)
    info = result.card.pseudo_labels
    # 20 labeled items: at most 20 pseudo-labels (max_seed_ratio 1.0), 10 per class
    assert info["status"] == "used" and info["used"] == 20
    assert info["per_run"] == {"drop/r1": 20} and info["per_class"] == {"circle": 10, "square": 10}
    assert info["gate"]["passed"] and info["gate"]["run"] == "drop/r1"
    assert result.card.training["n_pseudo_labels"] == 20
    # cross-fitted: every seed item trains the final model and calibrates out of fold;
    # pseudo-labels train, never calibrate
    assert result.card.training["n_train"] == 20 + 20
    assert result.card.validation["n"] == 20
    assert result.card.training["calibration"]["items"] == 20
    assert any(line.startswith("pseudo-labels: 20 used") for line in result.summary_lines())
    saved = json.loads(Path(result.model_uri, "model_card.json").read_text())
    assert saved["pseudo_labels"]["used"] == 20


def test_summary_and_report_show_the_card_line() -> None:
    from raylabel.report.run_page import render

    card = {"status": "refused", "reason": "accepted precision lower bound 0.870 < target 0.95"}
    info = pseudo_summary(card)
    assert info is not None and info["line"] == f"pseudo-labels refused: {card['reason']}"
    assert pseudo_summary({}) is None  # cards from before self-training: nothing shown
    assert pseudo_summary({"status": "disabled"}) is None
    html = render({"run_id": "r1", "pseudo_labels": info})
    assert "Pseudo-labels in training" in html and "lower bound 0.870" in html
