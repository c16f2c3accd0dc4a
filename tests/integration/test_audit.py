"""Seed audit: known-answer (planted flips are found), exclusion, CLI output schema, report."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from raylabel import audit as seed_audit
from raylabel.cli import main
from raylabel.config import load_config
from raylabel.demo.noise import plant_label_flips
from raylabel.errors import ConfigError
from raylabel.fit.folds import fold_assignment
from raylabel.inputs import sources
from raylabel.report.audit_page import render_page, section_html
from raylabel.report.run_page import render

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}
PER_CLASS = 30
FLIPS = 6  # ~7% of 90


@dataclass
class Audited:
    overrides: list[str]
    flipped: set[str]
    out_dir: Path
    cli_rc: int


def _colour_seed(root: Path) -> Path:
    """An easy seed (class = dominant colour, noisy pixels): a tiny CNN separates it in a few
    epochs, so every miss in the audit is the audit's, not the model's."""
    rng = np.random.default_rng(7)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            px = np.clip(np.array(rgb) + rng.normal(0, 35, (16, 16, 3)), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(px).save(buf, format="PNG")
            (root / name / f"{name}-{i:03d}.png").write_bytes(buf.getvalue())
    return root


@pytest.fixture(scope="module")
def audited(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Audited:
    root = tmp_path_factory.mktemp("audit")
    seed = _colour_seed(root / "seed")
    manifest, flipped = plant_label_flips(seed, root / "noisy.csv", FLIPS / (3 * PER_CLASS))
    overrides = [
        f"seed.path={manifest}",
        f"output.root={root / 'out'}",
        "model.image_size=16",
        "train.epochs=6",
        "train.min_steps=0",
        "train.batch_size=16",
        "train.lr=0.01",
        "train.augment=none",
        "audit.folds=3",
        "audit.cpus_per_fold=0.5",
    ]
    rc = main(["audit", *overrides])
    fp = sources.plan_seed(load_config([], overrides)).fingerprint
    return Audited(overrides, flipped, root / "out" / "audit" / fp, rc)


@pytest.mark.slow
def test_planted_flips_are_found(audited: Audited) -> None:
    assert audited.cli_rc == 0
    assert len(audited.flipped) == FLIPS
    table = pq.read_table(audited.out_dir / seed_audit.ISSUES_FILE)
    flagged = set(table.filter(table.column("is_label_issue")).column("item_id").to_pylist())
    hit = flagged & audited.flipped
    # random flagging of the same number of items would hit ~7% of them
    assert len(hit) >= FLIPS - 1, (sorted(flagged), sorted(audited.flipped))
    assert len(hit) / len(flagged) >= 0.6, (sorted(flagged), sorted(audited.flipped))
    # the suggested label of a found flip is the class its folder (the truth) names
    rows = {r["item_id"]: r for r in table.to_pylist()}
    assert all(rows[i]["suggested_label"] == i.split("/")[0] for i in hit)


@pytest.mark.slow
def test_cli_output_has_documented_schema_and_commit_marker(audited: Audited) -> None:
    table = pq.read_table(audited.out_dir / seed_audit.ISSUES_FILE)
    assert table.schema.equals(seed_audit.ISSUES_SCHEMA, check_metadata=False)
    assert table.num_rows == 3 * PER_CLASS
    assert sorted(table.column("rank").to_pylist()) == list(range(1, table.num_rows + 1))
    issue = table.column("is_label_issue").to_pylist()
    assert issue == sorted(issue, reverse=True)  # flagged rows come first, ranked
    assert (audited.out_dir / "_SUCCESS").is_file()
    assert "Seed audit" in (audited.out_dir / "report.html").read_text()


@pytest.mark.slow
def test_exclude_label_issues_removes_exactly_the_flagged_ids(audited: Audited) -> None:
    cfg = load_config([], [*audited.overrides, "train.exclude_label_issues=true"])
    plan = sources.plan_seed(cfg)
    before = set(plan.listing.column("item_id").to_pylist())
    info = seed_audit.exclude_from_training(cfg, plan)  # what `train` calls: reuses the audit
    after = set(plan.listing.column("item_id").to_pylist())
    table = pq.read_table(audited.out_dir / seed_audit.ISSUES_FILE)
    flagged = set(table.filter(table.column("is_label_issue")).column("item_id").to_pylist())
    assert info is not None and info["reused"] is True
    assert before - after == flagged
    assert info["excluded"] == len(flagged) > 0


def test_folds_are_stratified_and_deterministic() -> None:
    ids = [f"i{n}" for n in range(50)]
    labels = ["a"] * 30 + ["b"] * 20
    f1 = fold_assignment(ids, labels, 5, seed=0)
    assert np.array_equal(f1, fold_assignment(ids, labels, 5, seed=0))
    assert not np.array_equal(f1, fold_assignment(ids, labels, 5, seed=1))
    for lab, n in (("a", 30), ("b", 20)):
        counts = np.bincount(f1[np.array(labels) == lab], minlength=5)
        assert counts.tolist() == [n // 5] * 5


def test_planted_flips_are_exact_and_deterministic(tmp_path: Path) -> None:
    seed = _colour_seed(tmp_path / "seed")
    _, a = plant_label_flips(seed, tmp_path / "a.csv", 0.1, seed=3)
    _, b = plant_label_flips(seed, tmp_path / "b.csv", 0.1, seed=3)
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    wrong = {r["item_id"] for r in rows if r["label"] != r["item_id"].split("/")[0]}
    assert a == b == wrong and len(a) == 9


def test_bad_audit_keys_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"audit\.folds"):
        load_config([], ["audit.folds=1"])
    assert main(["audit", "audit.method=nope", "seed.path=/x"]) == 2
    assert "audit.method" in capsys.readouterr().err


def test_report_section_renders_audit_figures() -> None:
    summary = {
        "seed": {"fingerprint": "abc"},
        "settings": {"folds": 3, "epochs": 2, "method": "both", "rank_by": "self_confidence"},
        "counts": {"items": 10, "audited": 10, "unreadable": 0, "issues": 2},
        "oos_accuracy": 0.8,
        "per_class": {"x": {"items": 5, "issues": 2}},
        "pairs": [{"given": "x", "suggested": "y", "n": 2}],
        "top_issues": [
            {"item_id": "x/1", "given_label": "x", "suggested_label": "y", "label_quality": 0.01}
        ],
    }
    html = section_html({"seed_audit": {**summary, "excluded": 2}})
    assert "Seed audit" in html and "x/1" in html and "20.0%" in html
    assert section_html({}) == ""
    assert "x/1" in render_page(summary)
    assert 'id="seed-audit"' in render({"seed_audit": summary})  # the run report shows it
