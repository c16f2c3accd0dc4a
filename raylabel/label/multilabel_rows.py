"""Multilabel rows: each class decided on its own, from the card's two thresholds per class.

A class is positive when its calibrated score reaches its positive threshold, negative at
or below its negative threshold, undecided in between; a row is accepted only when no class
is undecided (its whole set of labels is then backed by the per-class bounds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.io.layout import utc_now
from raylabel.io.schema import MULTILABEL_SCHEMA
from raylabel.models.card import ModelCard
from raylabel.stats import multilabel as ml


def card_thresholds(card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) thresholds in the card's class order; a class missing one never
    decides that side."""
    pos = [float(card.thresholds.get(c, ml.NEVER_ACCEPT)) for c in card.classes]
    neg = [float(card.negative_thresholds.get(c, ml.NEVER_NEGATIVE)) for c in card.classes]
    return np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)


def _sets(mask: np.ndarray, classes: np.ndarray) -> pa.Array:
    """One list<string> per row: the classes whose mask bit is set, in card order."""
    n, k = mask.shape
    offsets = np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int32)
    names = np.broadcast_to(classes, (n, k))[mask]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(names.tolist(), pa.string()))


def _scores(values: np.ndarray) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    flat = pa.array(values.astype(np.float32).reshape(-1), pa.float32())
    return pa.ListArray.from_arrays(offsets, flat)


def multilabel_table(
    batch: dict[str, Any],
    raw: np.ndarray,
    cal: np.ndarray,
    ok: np.ndarray,
    thresholds: tuple[np.ndarray, np.ndarray],
    classes: np.ndarray,
    provenance: tuple[str, str, str],
) -> pa.Table:
    """MULTILABEL_SCHEMA rows of one batch; rows that failed upstream decide nothing (the
    sink turns them into error rows). `provenance` is (model_version, run_id, drop)."""
    n = len(batch["item_id"])
    positive, undecided = ml.decide(cal, thresholds[0], thresholds[1])
    positive &= ok[:, None]
    undecided &= ok[:, None]
    margin = ml.decision_margin(cal, thresholds[0], thresholds[1])
    accepted = ~undecided.any(1) & ok
    version, run_id, drop = provenance
    now = utc_now()
    columns = {
        "item_id": pa.array([str(v) for v in batch["item_id"]], pa.string()),
        "uri": pa.array([str(v) for v in batch["uri"]], pa.string()),
        "labels": _sets(positive, classes),
        "undecided_labels": _sets(undecided, classes),
        "scores": _scores(cal),
        "raw_scores": _scores(raw),
        "margin": pa.array(np.asarray(margin, dtype=np.float32), pa.float32()),
        "accepted": pa.array(accepted, pa.bool_()),
        "model_version": pa.array([version] * n, pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
        "drop": pa.array([drop] * n, pa.string()),
        "labeled_at": pa.array([now] * n, MULTILABEL_SCHEMA.field("labeled_at").type),
    }
    return pa.table(columns, schema=MULTILABEL_SCHEMA)
