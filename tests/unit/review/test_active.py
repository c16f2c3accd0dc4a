"""Known answers for the active-learning review queue (no Ray: pure selection logic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.review import active
from raylabel.review.draw import write_review_files


def _pool(n_per_class: int, classes: list[str], dim: int = 8, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    labels = [c for c in classes for _ in range(n_per_class)]
    emb = rng.normal(size=(len(labels), dim)).astype(np.float32)
    return labels, emb


def test_kcenter_is_deterministic_balanced_and_unique() -> None:
    labels, emb = _pool(20, ["a", "b", "c"])
    picks, dists = active.kcenter_select(labels, emb, 12, 0.01)
    again, _ = active.kcenter_select(labels, emb.copy(), 12, 0.01)
    assert picks == again
    assert len(picks) == 12 and len(set(picks)) == 12
    per_class = {c: sum(labels[i] == c for i in picks) for c in "abc"}
    assert per_class == {"a": 4, "b": 4, "c": 4}
    # each class starts at its most uncertain item (first in pool order)
    assert picks[:3] == [0, 20, 40]
    assert dists[0] is None and all(d is not None and d > 0 for d in dists[1:])


def test_kcenter_balances_when_a_class_runs_short() -> None:
    labels = ["a"] * 2 + ["b"] * 30
    emb = np.random.default_rng(1).normal(size=(32, 4))
    picks, _ = active.kcenter_select(labels, emb, 10, 0.0)
    assert sorted(labels[i] for i in picks).count("a") == 2
    assert len(picks) == 10


def test_planted_duplicates_are_picked_once() -> None:
    labels, emb = _pool(10, ["a", "b"], dim=16, seed=3)
    emb[1] = emb[0]  # exact duplicates of item 0 ...
    emb[7] = emb[0] * 3.0  # ... (same direction: cosine distance 0)
    emb[15] = emb[12]
    picks, _ = active.kcenter_select(labels, emb, 20, 0.01)
    assert len([i for i in picks if i in (0, 1, 7)]) == 1
    assert len([i for i in picks if i in (12, 15)]) == 1
    assert len(picks) == 20 - 3  # every other item, nothing twice
    unit = emb[picks] / np.linalg.norm(emb[picks], axis=1, keepdims=True)
    dist = 1.0 - unit @ unit.T
    np.fill_diagonal(dist, 1.0)
    assert dist.min() >= 0.01


def test_without_embeddings_it_is_balanced_margin_order() -> None:
    labels = ["a", "a", "a", "b", "b"]
    picks, dists = active.kcenter_select(labels, None, 4, 0.5)
    assert picks == [0, 3, 1, 4]
    assert dists == [None] * 4


def _cands(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = [f"item-{i:04d}" for i in range(n)]
    return pa.table(
        {
            "item_id": ids,
            "uri": [f"/x/{i}" for i in ids],
            "label": rng.choice(["cat", "dog", "eel"], size=n).tolist(),
            "margin": rng.uniform(0, 1, size=n).astype(np.float32),
        }
    )


def test_streamed_pool_equals_the_pool_of_the_whole_table() -> None:
    from raylabel.stats.sampling import hash01

    table = _cands(900)
    hist = {}
    for c in ("cat", "dog", "eel"):
        m = np.asarray(table.filter(pa.compute.equal(table["label"], c))["margin"])
        hist[c] = np.bincount(np.minimum((m * 100).astype(int), 99), minlength=100).tolist()
    cutoffs = active.margin_cutoffs(hist, 15)
    assert all(0 < v < 1 for v in cutoffs.values())
    kept = []
    for start in range(0, table.num_rows, 128):  # blocks as the review scan sees them
        block = table.slice(start, 128)
        u = hash01(block["item_id"].to_pylist(), 7)
        kept.append(block.filter(pa.array(active.pool_mask(block, u, cutoffs, 15))))
    streamed = active.class_pools(pa.concat_tables(kept), 15, 7)
    whole = active.class_pools(table, 15, 7)
    assert streamed["item_id"].to_pylist() == whole["item_id"].to_pylist()
    assert whole.num_rows == 45
    assert sum(t.num_rows for t in kept) < table.num_rows / 3


def test_margin_cutoffs_known_answer() -> None:
    hist = {"a": [5, 5, 5] + [0] * 97, "b": [1] * 100}
    cut = active.margin_cutoffs(hist, 8)
    assert cut["a"] == pytest.approx(0.03)  # 8th smallest is in bin 1; one bin of slack
    assert cut["b"] == pytest.approx(0.09)
    assert active.margin_cutoffs({"c": [2, 0]}, 8) == {"c": 1.0}
    assert active.pool_per_class(100, 3, 4.0) == 136


def test_uncertain_labelstudio_tasks_carry_no_prediction(tmp_path: Path) -> None:
    card = ModelCard("m-1", "small_cnn", "image", ["cat", "dog"], {"image_size": 32})
    run = RunLayout(str(tmp_path), "d", "r-1")
    sample = pa.table({"item_id": ["s1"], "uri": ["/s1"], "label": ["cat"], "confidence": [0.9]})
    queue = pa.table(
        {
            "item_id": ["q1", "q2"],
            "uri": ["/q1", "/q2"],
            "label": ["cat", "dog"],
            "confidence": [0.5, 0.51],
            "queue_rank": pa.array([0, 1], pa.int32()),
        }
    )
    write_review_files(run, card, sample, queue, StorageOptions())
    tasks = json.loads((tmp_path / "runs/d/r-1/review/uncertain_labelstudio.json").read_text())
    assert [t["data"]["item_id"] for t in tasks] == ["q1", "q2"]
    assert all("predictions" not in t for t in tasks)
    assert "label" not in json.dumps(tasks)  # neither the guess nor its score leaks
    sample_tasks = json.loads((tmp_path / "runs/d/r-1/review/labelstudio.json").read_text())
    assert len(sample_tasks[0]["predictions"]) == 1  # the stratified sample keeps its one


def test_embeddings_images_and_text_ignore_padding() -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from raylabel.models.embed import embeddings_for
    from raylabel.models.image import build_image_model
    from raylabel.models.predictor import Predictor

    torch.manual_seed(0)
    card = ModelCard("m", "small_cnn", "image", ["a", "b"], {"image_size": 32})
    img = Predictor(build_image_model("small_cnn", 2).eval(), card)
    pixels = np.random.default_rng(0).integers(0, 255, (5, 3, 32, 32), dtype=np.uint8)
    emb = embeddings_for(img, {"pixels": pixels}, batch_size=2)
    assert emb.shape == (5, 128) and emb.dtype == np.float32
    np.testing.assert_allclose(
        emb[3], embeddings_for(img, {"pixels": pixels[3:4]}, 1)[0], atol=1e-6
    )
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    text = Predictor(
        BertForSequenceClassification(cfg).eval(), ModelCard("t", "hf", "text", ["a", "b"], {})
    )
    ids = [np.array([2, 7, 9, 3]), np.array([2, 5, 3]), np.array([2, 7, 9, 11, 12, 13, 3])]
    together = embeddings_for(text, {"input_ids": ids}, batch_size=8)
    alone = embeddings_for(text, {"input_ids": ids[:1]}, batch_size=8)
    assert together.shape == (3, 16)
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)  # padding is masked out
