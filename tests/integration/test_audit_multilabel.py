"""Multilabel seed audit through the real stage: planted flipped tags are found with the tag to
add or remove, the documented schema, exclusion from training, the report."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from raylabel import audit as seed_audit
from raylabel.cli import main
from raylabel.config import load_config
from raylabel.inputs import sources

CHANNELS = {"red": 0, "green": 1, "blue": 2}
N_ITEMS = 90
FLIPS = 6  # one tag toggled on each of 6 items (~7%)


@dataclass
class Audited:
    overrides: list[str]
    flipped: dict[str, tuple[str, str]]  # item_id -> (class, "added" | "removed")
    out_dir: Path
    cli_rc: int


def _colour_sets_seed(root: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """An easy multilabel seed (a class is present when its colour channel is bright), with
    FLIPS tags toggled in the manifest: a tiny CNN learns it in a few epochs, so a missed flip
    is the audit's, not the model's."""
    rng = np.random.default_rng(11)
    (root / "img").mkdir(parents=True)
    names = sorted(CHANNELS)
    truth = rng.random((N_ITEMS, len(names))) < 0.45
    flip_rows = rng.choice(N_ITEMS, FLIPS, replace=False)
    flipped = {}
    rows = []
    for i in range(N_ITEMS):
        level = np.full(3, 50.0)
        for j, c in enumerate(names):
            level[CHANNELS[c]] += 170.0 * truth[i, j]
        px = np.clip(level + rng.normal(0, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, format="PNG")
        (root / "img" / f"{i:03d}.png").write_bytes(buf.getvalue())
        given = {c for j, c in enumerate(names) if truth[i, j]}
        if i in flip_rows:
            c = names[int(rng.integers(len(names)))]
            flipped[f"s{i:03d}"] = (c, "removed" if c not in given else "added")
            given ^= {c}  # the given set is wrong on c; the truth needs c added back or removed
        rows.append({"item_id": f"s{i:03d}", "uri": f"img/{i:03d}.png", "label": sorted(given)})
    manifest = root / "seed.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, flipped


@pytest.fixture(scope="module")
def audited(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Audited:
    root = tmp_path_factory.mktemp("audit-ml")
    manifest, flipped = _colour_sets_seed(root / "seed")
    overrides = [
        "task=multilabel",
        f"seed.path={manifest}",
        f"output.root={root / 'out'}",
        "model.image_size=16",
        "train.epochs=12",
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
def test_flipped_tags_are_found_with_the_tag_to_fix(audited: Audited) -> None:
    assert audited.cli_rc == 0
    assert len(audited.flipped) == FLIPS
    table = pq.read_table(audited.out_dir / seed_audit.ISSUES_FILE)
    assert table.schema.equals(seed_audit.MULTILABEL_ISSUES_SCHEMA, check_metadata=False)
    assert table.num_rows == N_ITEMS and table.column("error").null_count == N_ITEMS
    rows = {r["item_id"]: r for r in table.to_pylist()}
    flagged = {i for i, r in rows.items() if r["is_label_issue"]}
    hit = flagged & set(audited.flipped)
    # random flagging of the same number of items would hit ~7% of them
    assert len(hit) >= FLIPS - 1, (sorted(flagged), audited.flipped)
    assert len(hit) / len(flagged) >= 0.6, (sorted(flagged), audited.flipped)
    for item in hit:  # the tag the flip toggled is the one the audit says to fix
        cls, side = audited.flipped[item]
        assert cls in rows[item][side], (item, audited.flipped[item], rows[item])
    assert sorted(r["rank"] for r in rows.values()) == list(range(1, N_ITEMS + 1))
    issue = table.column("is_label_issue").to_pylist()
    assert issue == sorted(issue, reverse=True)  # flagged rows come first, ranked
    summary = json.loads((audited.out_dir / seed_audit.SUMMARY_FILE).read_text())
    assert summary["task"] == "multilabel" and summary["oos_tag_accuracy"] > 0.85
    assert (audited.out_dir / "_SUCCESS").is_file()
    html = (audited.out_dir / "report.html").read_text()
    assert "Seed audit" in html and "tags to add" in html


@pytest.mark.slow
def test_exclude_label_issues_works_for_multilabel(audited: Audited) -> None:
    cfg = load_config([], [*audited.overrides, "train.exclude_label_issues=true"])
    plan = sources.plan_seed(cfg)
    before = set(plan.listing.column("item_id").to_pylist())  # type: ignore[union-attr]
    info = seed_audit.exclude_from_training(cfg, plan)  # what `train` calls: reuses the audit
    after = set(plan.listing.column("item_id").to_pylist())  # type: ignore[union-attr]
    table = pq.read_table(audited.out_dir / seed_audit.ISSUES_FILE)
    flagged = set(table.filter(table.column("is_label_issue")).column("item_id").to_pylist())
    assert info is not None and info["reused"] is True and info["task"] == "multilabel"
    assert before - after == flagged
    assert info["excluded"] == len(flagged) > 0
    # a multiclass audit of the same files is a different audit: never reused for multilabel
    multiclass = load_config([], [o for o in audited.overrides if o != "task=multilabel"])
    assert seed_audit.stage.settings(multiclass) != info["settings"]
