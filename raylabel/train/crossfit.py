"""Cross-fitted calibration: every seed item calibrates, none is held out of training.

A 20% validation split leaves a small seed with too few items per class for any lower
bound to reach the target (40 per class -> 8 validation items). Instead the seed is split
into k folds; k fold models (trained exactly like the final model, see `folds`) give each
seed item out-of-fold logits, temperature and thresholds are fit on all of them, and the
final model trains on every seed item. The fold models are kept, so labeling can use
their ensemble instead (`infer.ensemble`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylabel.config import Config
from raylabel.fit import folds
from raylabel.inputs.sources import SourcePlan
from raylabel.io.storage import StorageOptions
from raylabel.models.card import CALIBRATION_FILE, FOLDS_DIR, ModelCard, ensemble_pays
from raylabel.stats.thresholds import review_weights


@dataclass
class CalibrationSet:
    """Logits of items the model did not train on, their labels and evidence weights."""

    logits: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    method: str
    item_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    folds: int = 0
    unreadable: int = 0

    def describe(self) -> dict[str, Any]:
        """What the card says about which items calibrated and how."""
        reviewed = sum(1 for s in self.sources if s == "review")
        n = len(self.labels)
        if self.method == "crossfit":
            how = (
                f"{self.folds}-fold out-of-fold predictions of every readable seed item "
                f"({n} items{f', {reviewed} of them reviewed drop items' if reviewed else ''}); "
                "temperature and thresholds fit on all of them; the final model trained on "
                "every seed item"
            )
        elif self.method == "zero_shot":
            how = (
                f"zero-shot predictions (model.prompts) of every readable seed item ({n} items"
                f"{f', {reviewed} of them reviewed drop items' if reviewed else ''}); the model "
                "trained on none of them; temperature and thresholds fit on all of them"
            )
        else:
            how = f"held-out validation split of {n} seed items (train.val_fraction)"
        return {
            "method": self.method,
            "folds": self.folds,
            "items": n,
            "seed_items": n - reviewed,
            "reviewed_items": reviewed,
            "unreadable": self.unreadable,
            "description": how,
        }


def run(
    cfg: Config,
    plan: SourcePlan,
    classes: list[str],
    opts: StorageOptions,
    pretrained: str | None,
    tokenizer_json: str | None,
) -> folds.OutOfFold:
    """Train the k fold models as parallel Ray tasks; out-of-fold logits for every item."""
    t = cfg.train
    listing = plan.listing
    assert listing is not None
    strata = plan.strata_labels()
    k = min(t.calibration_folds, _max_folds(strata))
    assignment = folds.fold_assignment(listing.column("item_id").to_pylist(), strata, k, t.seed)
    ds = folds.fold_datasets(cfg, plan, classes, assignment, opts, k, tokenizer_json)
    cpus, threads = folds.fold_cpus(t.cpus_per_worker)
    config = folds.loop_config(
        cfg, classes, threads, t.epochs, pretrained, tokenizer_json, use_gpu=t.use_gpu,
        pos_weight=plan.positive_weights(classes),
    )  # fmt: skip
    return folds.out_of_fold(
        ds,
        listing.num_rows,
        len(classes),
        config,
        cpus=cpus,
        gpus=1.0 if t.use_gpu else 0.0,
        max_retries=t.max_failures,
        # multilabel fold ensembles are not built yet: the final model labels
        keep_models=cfg.task != "multilabel"
        and keep_fold_models(t.keep_fold_models, listing.num_rows, len(classes)),
    )


def keep_fold_models(mode: str, n_items: int, n_classes: int) -> bool:
    """`train.keep_fold_models`: always / never, or auto = a small seed, where labeling by
    the fold ensemble is worth its k-fold inference cost (and its k copies on disk)."""
    if mode != "auto":
        return mode == "always"
    return ensemble_pays(n_items, n_classes)


def _max_folds(labels: list[str]) -> int:
    """k may not exceed the items of the smallest class with 2+ items (every fold trains on
    every class it can)."""
    counts = [labels.count(c) for c in set(labels)]
    usable = [n for n in counts if n >= 2]
    return max(2, min(usable)) if usable else 2


def calibration_set(
    cfg: Config,
    plan: SourcePlan,
    classes: list[str],
    oof: folds.OutOfFold,
    feedback: pa.Table | None,
    method: str = "crossfit",
) -> CalibrationSet:
    """Readable seed rows with their out-of-fold (or zero-shot) logits; reviewed feedback
    rows weigh by their sample design (rescaled per run), seed rows weigh 1."""
    listing = plan.listing
    assert listing is not None
    index = plan.label_index(classes)
    ids = listing.column("item_id").to_pylist()
    y = np.array([index[v] for v in listing.column("label").to_pylist()], dtype=np.int64)
    ok = oof.readable
    weights = np.ones(len(ids))
    source = ["seed"] * len(ids)
    if feedback is not None and "weight" in feedback.column_names:
        fb_w = dict(zip(feedback.column("item_id").to_pylist(), _fb_weights(feedback), strict=True))
        for r, item in enumerate(ids):
            if item in fb_w and fb_w[item] is not None:
                weights[r] = fb_w[item]
                source[r] = "review"
    keep = np.flatnonzero(ok)
    return CalibrationSet(
        logits=oof.logits[keep],
        labels=y[keep],
        weights=weights[keep],
        method=method,
        item_ids=[ids[r] for r in keep],
        sources=[source[r] for r in keep],
        folds=int(oof.fold.max()) + 1 if len(oof.fold) else 0,
        unreadable=int((~ok).sum()),
    )


def _fb_weights(feedback: pa.Table) -> list[float | None]:
    """Per feedback row: its design weight rescaled to average 1 within its run (None for
    items reviewed outside the probability sample)."""
    w = feedback.column("weight").to_pylist()
    runs = feedback.column("run").to_pylist() if "run" in feedback.column_names else [""] * len(w)
    have = [i for i, v in enumerate(w) if v is not None and v > 0]
    out: list[float | None] = [None] * len(w)
    if have:
        scaled = review_weights(np.array([w[i] for i in have]), [runs[i] for i in have])
        for i, v in zip(have, scaled, strict=True):
            out[i] = float(v)
    return out


def holdout_set(ckpt_dir: Path) -> CalibrationSet:
    """The validation split's logits, as the last training checkpoint recorded them."""
    from safetensors.numpy import load_file as load_np

    val = load_np(str(ckpt_dir / "val_logits.safetensors"))
    logits, y = val["logits"].astype(np.float64), val["labels"].astype(np.int64)
    if logits.ndim != 2 or not len(y):
        logits = np.zeros((0, 2))
    return CalibrationSet(logits, y, np.ones(len(y)), "holdout", sources=["seed"] * len(y))


def write_calibration(calib: CalibrationSet, card: ModelCard, out_dir: Path) -> None:
    """`calibration.parquet`: the evidence behind the card's thresholds, kept so labeling can
    re-derive them with reviewed items added (qc.use_reviews)."""
    from raylabel.stats.calibration import softmax

    probs = softmax(calib.logits, card.temperature) if len(calib.labels) else np.zeros((0, 1))
    pred = probs.argmax(1) if len(calib.labels) else np.zeros(0, np.int64)
    conf = probs[np.arange(len(pred)), pred] if len(pred) else np.zeros(0)
    ids = calib.item_ids or [""] * len(pred)
    table = pa.table(
        {
            "item_id": pa.array(ids, pa.string()),
            "label_index": pa.array(calib.labels, pa.int32()),
            "predicted_index": pa.array(pred, pa.int32()),
            "confidence": pa.array(conf, pa.float64()),
            "weight": pa.array(calib.weights, pa.float64()),
            "source": pa.array(calib.sources or ["seed"] * len(pred), pa.string()),
        }
    )
    pq.write_table(table, out_dir / CALIBRATION_FILE)


def write_fold_models(
    cfg: Config,
    classes: list[str],
    oof: folds.OutOfFold,
    card: ModelCard,
    out_dir: Path,
    write_model_dir: Callable[[Config, list[str], Path, ModelCard, Path], None],
) -> None:
    """Each fold model as a loadable model directory `folds/<i>/` (same card, same classes);
    the card's `ensemble` entry lists them."""
    dirs, shas = [], []
    for i, files in enumerate(oof.model_files):
        with tempfile.TemporaryDirectory(prefix="raylabel-foldckpt-") as tmp:
            ckpt = Path(tmp)
            for rel, data in files.items():
                (ckpt / rel).parent.mkdir(parents=True, exist_ok=True)
                (ckpt / rel).write_bytes(data)
            fold_card = ModelCard.from_json(json.loads(json.dumps(card.to_json())))
            fold_card.model_version = f"{card.model_version}/fold{i}"
            dest = out_dir / FOLDS_DIR / str(i)
            if dest.exists():
                shutil.rmtree(dest)
            write_model_dir(cfg, classes, ckpt, fold_card, dest)
        dirs.append(f"{FOLDS_DIR}/{i}")
        shas.append(fold_card.weights_sha256)
    card.ensemble = {
        "members": dirs,
        "sha256": shas,
        "combine": "mean of calibrated probabilities",
    }
    (out_dir / "model_card.json").write_text(json.dumps(card.to_json(), indent=2))
