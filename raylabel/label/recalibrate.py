"""Thresholds re-derived at labeling time: the card's calibration items plus reviewed items.

The review sample of each night is a stratified probability sample of the drop itself,
the distribution being labeled. Once reviewers have checked it (`raylabel evaluate`),
those items are calibration evidence for the model that scored them: same model version,
same scorer (single model or fold ensemble), confidence as labeled, correctness from the
reviewer, design weight rescaled per run. Each night the thresholds are recomputed from
the card's own calibration items (`calibration.parquet`) plus all such reviews, with the
card's target, confidence level and bound, so coverage grows as reviews accumulate while
the bound still holds. The run's summary records what was used.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylabel.io import listing, storage
from raylabel.io.storage import StorageOptions
from raylabel.models.card import CALIBRATION_FILE, ModelCard
from raylabel.stats.thresholds import Evidence, review_weights, thresholds_from_evidence


def card_evidence(model_dir: str, card: ModelCard, opts: StorageOptions) -> Evidence | None:
    """The items the card's thresholds came from (None for models trained before the file)."""
    uri = storage.join(model_dir, CALIBRATION_FILE)
    if not storage.exists(uri, opts):
        return None
    t = pq.read_table(io.BytesIO(storage.read_bytes(uri, opts)))
    y = t.column("label_index").to_numpy().astype(np.int64)
    pred = t.column("predicted_index").to_numpy().astype(np.int64)
    del card
    return Evidence(
        pred,
        t.column("confidence").to_numpy().astype(np.float64),
        pred == y,
        t.column("weight").to_numpy().astype(np.float64),
    )


def reviewed_evidence(
    root: str, card: ModelCard, scorer: str, opts: StorageOptions
) -> tuple[Evidence, dict[str, int]]:
    """Probability-sample reviews of runs this model (and scorer) labeled; the newest review
    of an item wins. Returns the evidence and the number of reviews used per run."""
    base = storage.join(root, "feedback")
    if not storage.exists(base, opts):
        return Evidence.empty(), {}
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for f in listing.list_files(base, opts, extensions=[".parquet"]):
        t = pq.read_table(io.BytesIO(storage.read_bytes(f.uri, opts)))
        if not {"model_version", "confidence", "weight", "predicted"} <= set(t.column_names):
            continue  # written before reviews were kept as evidence
        for row in _usable_rows(t, card, scorer):
            newest[(row["drop"], row["item_id"])] = {**row, "group": f.rel_path}
    if not newest:
        return Evidence.empty(), {}
    rows = list(newest.values())
    index = {c: i for i, c in enumerate(card.classes)}
    pred = np.array([index[r["predicted"]] for r in rows], dtype=np.int64)
    correct = np.array([r["label"] == r["predicted"] for r in rows], dtype=bool)
    groups = [r["group"] for r in rows]
    weights = review_weights(np.array([r["weight"] for r in rows], dtype=np.float64), groups)
    conf = np.array([r["confidence"] for r in rows], dtype=np.float64)
    per_run: dict[str, int] = {}
    for g in groups:
        per_run[g] = per_run.get(g, 0) + 1
    return Evidence(pred, conf, correct, weights), per_run


def _usable_rows(t: pa.Table, card: ModelCard, scorer: str) -> list[dict[str, Any]]:
    classes = set(card.classes)
    out = []
    for row in t.to_pylist():
        if row.get("model_version") != card.model_version:
            continue
        if (row.get("scorer") or "model") != scorer or row.get("sampled") is False:
            continue
        if row.get("weight") is None or not row["weight"] > 0 or row.get("confidence") is None:
            continue
        if row.get("predicted") not in classes:
            continue
        out.append(row)
    return out


def label_thresholds(
    root: str,
    model_dir: str,
    card: ModelCard,
    scorer: str,
    min_support: int,
    opts: StorageOptions,
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """Tonight's thresholds (None: the card's) and the summary block that explains them."""
    detail = card.training.get("threshold_detail", {})
    method = str(detail.get("method", "clopper_pearson"))
    info: dict[str, Any] = {
        "source": "card",
        "calibration_items": int(card.training.get("calibration", {}).get("items", 0))
        or int(card.validation.get("n", 0) or 0),
        "reviewed_items": 0,
        "reviewed_runs": {},
        "thresholds": dict(card.thresholds),
        "threshold_source": dict(card.threshold_source),
    }
    reviews, per_run = reviewed_evidence(root, card, scorer, opts)
    if not len(reviews):
        return None, info
    base = card_evidence(model_dir, card, opts)
    if base is None:
        info["note"] = f"{len(reviews)} reviewed items unused: the model has no {CALIBRATION_FILE}"
        return None, info
    thr = thresholds_from_evidence(
        base.concat(reviews),
        card.classes,
        card.target_precision,
        card.confidence_level,
        int(detail.get("min_support", min_support)),
        method,
    )
    info.update(
        source="card+reviews",
        calibration_items=len(base),
        reviewed_items=len(reviews),
        reviewed_runs=per_run,
        thresholds=dict(thr.thresholds),
        threshold_source=dict(thr.source),
        card_thresholds=dict(card.thresholds),
        detail=thr.to_json(),
    )
    return dict(thr.thresholds), info
