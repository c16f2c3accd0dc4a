"""Issue #18: the review sample and queue of a multilabel run (strata, determinism, weights,
review files) on synthetic labeled tables built with MULTILABEL_SCHEMA."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylabel.config import load_config
from raylabel.io.layout import RunLayout
from raylabel.io.schema import MULTILABEL_SCHEMA
from raylabel.models.card import ModelCard
from raylabel.review import ml_draw
from raylabel.review.draw import u_bounds, write_review_files
from raylabel.stats import multilabel_sampling as mls
from raylabel.stats.sampling import hash01

CLASSES = ["cat", "dog", "sky"]
POS, NEG = 0.7, 0.3
EDGES = mls.margin_edges([0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])


def ml_rows(n: int, seed: int = 0) -> pa.Table:
    """n labeled rows decided by the rule (positive >= POS, negative <= NEG)."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.6, 0.6, size=(n, len(CLASSES))).astype(np.float32)
    rows = []
    for i, s in enumerate(scores):
        pos = [c for c, v in zip(CLASSES, s, strict=True) if v >= POS]
        und = [c for c, v in zip(CLASSES, s, strict=True) if NEG < v < POS]
        margin = float(np.min(np.minimum(np.abs(s - POS), np.abs(s - NEG))))
        rows.append({
            "item_id": f"it{i:05d}", "uri": f"/d/it{i:05d}.png", "labels": pos,
            "undecided_labels": und, "scores": s.tolist(), "raw_scores": s.tolist(),
            "margin": margin, "accepted": not und, "model_version": "m-1", "run_id": "r-1",
            "drop": "d", "labeled_at": datetime(2026, 1, 1, tzinfo=UTC),
        })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MULTILABEL_SCHEMA)


def card() -> ModelCard:
    return ModelCard("m-1", "small_cnn", "image", CLASSES, {"image_size": 32}, task="multilabel")


def _row(accepted: bool, undecided: list[str], margin: float) -> dict:
    return {"item_id": "x", "uri": "/x", "labels": ["cat"], "undecided_labels": undecided,
            "scores": [0.9, 0.1, 0.5], "raw_scores": [0.9, 0.1, 0.5], "margin": margin,
            "accepted": accepted, "model_version": "m", "run_id": "r", "drop": "d",
            "labeled_at": None}  # fmt: skip


def test_margin_edges_turn_the_confidence_bins_around() -> None:
    assert EDGES == [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
    with pytest.raises(ValueError, match="strictly increasing"):
        mls.margin_edges([0.5])


def test_strata_are_accepted_x_undecided_count_x_margin_bin() -> None:
    t = pa.Table.from_pylist(
        [
            _row(True, [], 0.02),
            _row(False, ["dog"], 0.15),
            _row(False, ["dog", "sky"], 0.6),
            _row(False, ["cat", "dog", "sky"], 1.01),  # 2+; a margin over 1: the last bin
            _row(True, [], 0.05),  # on an edge: the bin it starts
        ],
        schema=MULTILABEL_SCHEMA,
    )
    assert mls.row_strata(t, EDGES) == [
        "acc/u0|0.00-0.05",
        "rev/u1|0.10-0.20",
        "rev/u2+|0.50-1.00",
        "rev/u2+|0.50-1.00",
        "acc/u0|0.05-0.10",
    ]
    assert mls.strata_counts(t, EDGES) == {
        "acc/u0|0.00-0.05": 1, "acc/u0|0.05-0.10": 1, "rev/u1|0.10-0.20": 1,
        "rev/u2+|0.50-1.00": 2,
    }  # fmt: skip
    # the queue: more undecided classes first, then the smaller margin
    assert np.argsort(mls.queue_priority(t), kind="stable").tolist() == [3, 2, 1, 0, 4]


def test_error_weights_favour_close_calls_and_undecided_rows() -> None:
    w = mls.error_weights(["acc/u0|0.00-0.05", "acc/u0|0.50-1.00", "rev/u1|0.50-1.00"])
    assert w["acc/u0|0.00-0.05"] > w["acc/u0|0.50-1.00"]
    assert w["rev/u1|0.50-1.00"] == pytest.approx(0.5)


def _draw(blocks: list[pa.Table], size: int, queue: int, seed: int = 3) -> tuple:
    """What draw_multilabel_review computes, its Ray scan done block by block in process."""
    cfg = load_config([], [f"review.size={size}", f"review.uncertain_size={queue}",
                           f"review.seed={seed}"])  # fmt: skip
    pops: dict[str, int] = {}
    for b in blocks:
        for k, v in mls.strata_counts(b, EDGES).items():
            pops[k] = pops.get(k, 0) + v
    alloc = ml_draw.allocation_for(cfg, pops)
    kw = {"bounds": u_bounds(pops, alloc), "edges": EDGES, "seed": seed,
          "queue_k": queue + sum(alloc.values())}  # fmt: skip
    parts = [ml_draw._block(b, **kw) for b in blocks]
    assert [c for _, c in parts] == [mls.strata_counts(b, EDGES) for b in blocks]
    cands = pa.concat_tables([p for p, _ in parts])
    sample = ml_draw.select_sample(cands, pops, alloc, EDGES, seed)
    return sample, ml_draw.queue_from(cands, sample, queue), pops, alloc


def test_sample_is_deterministic_weighted_and_independent_of_blocks() -> None:
    rows = ml_rows(3000)
    one, q_one, pops, alloc = _draw([rows], 120, 20)
    three, q_three, _, _ = _draw([rows.slice(0, 700), rows.slice(700, 1500), rows.slice(2200)],
                                 120, 20)  # fmt: skip
    assert one.equals(three) and q_one.equals(q_three)
    assert one.num_rows == sum(alloc.values()) == 120
    assert len(pops) >= 6 and sum(pops.values()) == 3000
    # each stratum's weights sum to its population, and the rows are its smallest-u items
    strata = mls.row_strata(rows, EDGES)
    u = hash01(rows.column("item_id").to_pylist(), 3)
    by = one.group_by("stratum").aggregate([("weight", "sum"), ("item_id", "count")])
    cols = [by.column(c).to_pylist() for c in ("stratum", "weight_sum", "item_id_count")]
    for s, wsum, cnt in zip(*cols, strict=True):
        assert wsum == pytest.approx(pops[s]) and cnt == alloc[s]
        mine = sorted(np.flatnonzero(np.asarray(strata) == s), key=lambda i: u[i])[:cnt]
        got = set(one.filter(pa.compute.equal(one.column("stratum"), s)).column("item_id")
                  .to_pylist())  # fmt: skip
        assert got == {f"it{i:05d}" for i in mine}
    np.testing.assert_allclose(one.column("inclusion_prob").to_numpy(),
                               1.0 / one.column("weight").to_numpy())  # fmt: skip
    # the sample carries the multilabel columns with their schema types
    for col in ("labels", "undecided_labels", "scores", "raw_scores", "margin", "accepted"):
        assert one.schema.field(col).type == MULTILABEL_SCHEMA.field(col).type
    # another seed draws another sample
    assert set(_draw([rows], 120, 0, seed=4)[0].column("item_id").to_pylist()) != set(
        one.column("item_id").to_pylist()
    )


def test_queue_is_outside_the_sample_most_undecided_first() -> None:
    rows = ml_rows(800, seed=1)
    sample, queue, _, _ = _draw([rows.slice(0, 400), rows.slice(400)], 40, 25)
    ids = queue.column("item_id").to_pylist()
    assert len(ids) == 25 and not set(ids) & set(sample.column("item_id").to_pylist())
    prio = mls.queue_priority(queue)
    assert np.all(np.diff(prio) >= 0)
    rest = rows.filter(
        pa.compute.invert(
            pa.compute.is_in(
                rows.column("item_id"),
                pa.concat_arrays(
                    [
                        sample.column("item_id").combine_chunks(),
                        queue.column("item_id").combine_chunks(),
                    ]
                ),
            )
        )
    )
    assert mls.queue_priority(rest).min() >= prio.max()  # fmt: skip


def test_review_files_offer_every_class_and_predict_every_positive(tmp_path: Path) -> None:
    rows = ml_rows(300, seed=2)
    sample, queue, _, _ = _draw([rows], 30, 10)
    run = RunLayout(str(tmp_path), "d", "r-1")
    files = write_review_files(run, card(), sample, queue, None, separator=";")
    xml = Path(files["labelstudio_config.xml"]).read_text()
    choices = ET.fromstring(xml).find("Choices")
    assert choices is not None and choices.get("choice") == "multiple"
    assert [c.get("value") for c in choices.findall("Choice")] == CLASSES
    tasks = json.loads(Path(files["labelstudio.json"]).read_text())
    by_id = {r["item_id"]: r for r in sample.to_pylist()}
    assert len(tasks) == 30
    for t in tasks:
        (pred,) = t["predictions"]
        want = by_id[t["data"]["item_id"]]["labels"]
        got = [c for r in pred["result"] for c in r["value"]["choices"]]
        assert got == want and (pred["result"] != []) == bool(want)
        assert 0.0 <= pred["score"] <= 1.0
    assert any(not r["labels"] for r in by_id.values())  # an empty set was exercised
    queue_tasks = json.loads(Path(files["uncertain_labelstudio.json"]).read_text())
    assert len(queue_tasks) == 10 and all("predictions" not in t for t in queue_tasks)
    csv_rows = list(csv.DictReader(io.StringIO(Path(files["sample.csv"]).read_text())))
    assert [r["labels"] for r in csv_rows] == [";".join(r["labels"]) for r in sample.to_pylist()]
    assert pq.read_table(files["sample.parquet"]).equals(sample)
