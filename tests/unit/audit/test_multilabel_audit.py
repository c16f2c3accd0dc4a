"""Multilabel seed audit ranking (cleanlab multi-label) on synthetic out-of-sample probabilities:
planted flipped tags are flagged and ranked first, with the right tags to add and remove."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from raylabel.audit import MULTILABEL_ISSUES_SCHEMA, AuditResult
from raylabel.audit.multilabel import label_set, multilabel_learning, rank_items
from raylabel.audit.stage import settings
from raylabel.config import load_config
from raylabel.inputs import sources
from raylabel.report.audit_page import render_page, section_html

CLASSES = ["bird", "car", "dog", "tree"]


def _synthetic(
    n: int = 240, k: int = 4, flips: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(given 0/1, out-of-sample probs, flipped rows, flipped class per row): a decent model
    (right side of 0.5 mostly, some honest misses), confident on the planted flips' classes."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, k)) < rng.uniform(0.25, 0.45, k)).astype(np.int64)
    probs = np.where(truth == 1, rng.beta(6, 2, (n, k)), rng.beta(2, 6, (n, k)))
    rows = rng.choice(n, flips, replace=False)
    cols = rng.integers(0, k, flips)
    probs[rows, cols] = np.where(truth[rows, cols] == 1, 0.97, 0.03)
    given = truth.copy()
    given[rows, cols] ^= 1
    return given, probs, rows, cols


@pytest.mark.parametrize("method", ["low_self_confidence", "prune_by_noise_rate", "both"])
def test_planted_flips_rank_first_and_name_their_class(method: str) -> None:
    given, probs, rows, cols = _synthetic()
    rk = rank_items(given, probs, method, "self_confidence")
    assert rk.judged.all()
    # every planted flip is flagged, and they are the lowest label-quality items
    assert rk.issue[rows].all(), sorted(set(rows) - set(np.flatnonzero(rk.issue)))
    assert set(np.argsort(rk.quality)[: len(rows)]) == set(rows)
    if method == "low_self_confidence":  # the default flags about as many items as it estimates
        assert len(rows) / rk.issue.sum() >= 0.6  # are wrong: most flags are the flips
    for r, c in zip(rows, cols, strict=True):
        assert rk.wrong[r, c], (r, c, np.flatnonzero(rk.wrong[r]))
    # wrong classes are named on flagged items only
    assert not (rk.wrong & ~rk.issue[:, None]).any()


def test_added_and_removed_follow_the_direction_of_the_flip(tmp_path: Path) -> None:
    given, probs, rows, cols = _synthetic(n=120, flips=6, seed=3)
    plan = _plan(tmp_path, given)
    cfg = load_config(overrides=["task=multilabel", f"seed.path={tmp_path / 'seed.jsonl'}"])
    fold = np.arange(len(given), dtype=np.int32) % 3
    table, summary = multilabel_learning(cfg, plan, CLASSES, probs, fold, settings(cfg))
    assert table.schema.equals(MULTILABEL_ISSUES_SCHEMA)
    by_id = {r["item_id"]: r for r in table.to_pylist()}
    for r, c in zip(rows, cols, strict=True):
        row = by_id[f"i{r:04d}"]
        assert row["is_label_issue"] and row["rank"] <= 12
        side = "removed" if given[r, c] else "added"
        assert CLASSES[c] in row[side], row
        assert (CLASSES[c] in row["suggested_labels"]) == (side == "added")
        assert row["given_labels"] == [CLASSES[j] for j in np.flatnonzero(given[r])]
    assert summary["task"] == "multilabel" and summary["settings"]["task"] == "multilabel"
    assert summary["counts"]["issues"] == sum(table.column("is_label_issue").to_pylist())
    flips_per_class = {c: int((cols == j).sum()) for j, c in enumerate(CLASSES)}
    assert all(summary["per_class"][c]["issues"] >= n for c, n in flips_per_class.items())
    assert summary["top_issues"][0]["item_id"] == table.column("item_id")[0].as_py()
    json.dumps(summary)  # audit.json is plain JSON


def test_unreadable_rows_go_last_and_constant_classes_are_not_ranked(tmp_path: Path) -> None:
    given, probs, _, _ = _synthetic(n=60, flips=3, seed=5)
    given[:, 3] = 1  # every item is a "tree": nothing to compare that tag against
    plan = _plan(tmp_path, given)
    cfg = load_config(overrides=["task=multilabel", f"seed.path={tmp_path / 'seed.jsonl'}"])
    probs[[0, 1]] = np.nan
    table, summary = multilabel_learning(
        cfg, plan, CLASSES, probs, np.zeros(60, np.int32), settings(cfg)
    )
    last = table.slice(58).to_pylist()
    assert {r["item_id"] for r in last} == {"i0000", "i0001"}
    assert all(r["error"] and r["suggested_labels"] is None for r in last)
    assert all(r["label_quality"] is None for r in last)
    assert summary["unjudged_classes"] == ["tree"]
    assert summary["counts"]["audited"] == 58 and summary["counts"]["unreadable"] == 2
    assert not any("tree" in (r["added"] or []) + (r["removed"] or []) for r in table.to_pylist())


def test_nothing_to_rank_is_not_an_error() -> None:
    given = np.ones((5, 2), dtype=np.int64)
    rk = rank_items(given, np.full((5, 2), 0.9), "low_self_confidence", "self_confidence")
    assert not rk.issue.any() and not rk.judged.any() and np.isnan(rk.quality).all()


def test_cli_lines_and_report_show_sets(tmp_path: Path) -> None:
    given, probs, _, _ = _synthetic(n=60, flips=4, seed=7)
    plan = _plan(tmp_path, given)
    cfg = load_config(overrides=["task=multilabel", f"seed.path={tmp_path / 'seed.jsonl'}"])
    _, summary = multilabel_learning(
        cfg, plan, CLASSES, probs, np.zeros(60, np.int32), settings(cfg)
    )
    top = summary["top_issues"][0]
    lines = AuditResult("/out", summary, duration_s=1.0).summary_lines()
    assert "multilabel" in lines[0] and "exact-set accuracy" in lines[1]
    assert any(top["item_id"] in ln and label_set(top["given_labels"]) in ln for ln in lines)
    html = render_page(summary)
    assert top["item_id"] in html and label_set(top["suggested_labels"]) in html
    assert "tags to add" in html and "exact-set accuracy" in html
    card_info = {**summary, "excluded": 2, "reused": True}
    assert top["item_id"] in section_html({"seed_audit": card_info})


def test_label_set_reads_like_a_set() -> None:
    assert label_set(["a", "b"]) == "{a, b}" and label_set([]) == "{}" and label_set(None) == "{}"


def _plan(tmp_path: Path, given: np.ndarray) -> sources.SourcePlan:
    """A multilabel JSONL seed whose row r is item i<r> with the classes `given[r]` marks."""
    (tmp_path / "img").mkdir(exist_ok=True)
    lines = []
    for r, row in enumerate(given):
        (tmp_path / "img" / f"{r}.png").write_bytes(b"x")
        labels = [CLASSES[j] for j in np.flatnonzero(row)]
        rec = {"item_id": f"i{r:04d}", "uri": f"img/{r}.png", "label": labels}
        lines.append(json.dumps(rec))
    (tmp_path / "seed.jsonl").write_text("\n".join(lines) + "\n")
    cfg = load_config(overrides=["task=multilabel", f"seed.path={tmp_path / 'seed.jsonl'}"])
    plan = sources.plan_seed(cfg)
    assert plan.classes() == sorted({c for row in given for c in np.array(CLASSES)[row == 1]})
    assert plan.listing is not None and pa.types.is_string(plan.listing.column("label").type)
    # the probabilities' rows follow the listing: it must keep the file's order
    assert plan.listing.column("item_id").to_pylist() == [f"i{r:04d}" for r in range(len(given))]
    return plan
