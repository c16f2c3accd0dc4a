"""The model card of a training run: temperature and thresholds from the calibration set,
the figures behind them, and the preprocessing labeling must repeat."""

from __future__ import annotations

from typing import Any

import numpy as np

from raylabel import __version__
from raylabel.config import Config
from raylabel.inputs import sources
from raylabel.io import layout
from raylabel.models.card import ModelCard
from raylabel.models.registry import family_for
from raylabel.stats import calibration as calibrate
from raylabel.train import crossfit


def make_card(
    cfg: Config,
    classes: list[str],
    plan: sources.SourcePlan,
    calib: crossfit.CalibrationSet,
    history: list[dict[str, float]],
    version: str,
    n_train: int,
    n_val: int,
) -> ModelCard:
    """Temperature and thresholds from the calibration set; the card records how."""
    logits, y = calib.logits, calib.labels
    temperature = calibrate.fit_temperature(logits, y)
    cal = calibrate.softmax(logits, temperature)
    q = cfg.qc
    thr = calibrate.choose_thresholds(
        cal, y, classes, q.target_precision, q.confidence_level, q.min_support, q.bound,
        weights=calib.weights,
    )  # fmt: skip
    thr.calibration = calib.describe()
    return ModelCard(
        model_version=version,
        arch=cfg.model.arch,
        modality=cfg.modality,
        classes=classes,
        preprocessing=family_for(cfg.modality, cfg.model.arch).card_preprocessing(cfg),
        temperature=float(temperature),
        thresholds={c: float(v) for c, v in thr.thresholds.items()},
        threshold_source=dict(thr.source),
        global_threshold=float(thr.global_threshold),
        target_precision=q.target_precision,
        confidence_level=q.confidence_level,
        validation=_validation(classes, logits, temperature, y),
        training=training_info(cfg, plan, calib, history, n_train, n_val, thr.to_json()),
        seed_fingerprint=plan.fingerprint,
        created_at=layout.utc_now().isoformat(),
        raylabel_version=__version__,
    )


def training_info(
    cfg: Config,
    plan: sources.SourcePlan,
    calib: crossfit.CalibrationSet,
    history: list[dict[str, float]],
    n_train: int,
    n_val: int,
    threshold_detail: dict[str, Any],
) -> dict[str, Any]:
    """The card's `training`: the schedule as run, the seed, the history, the calibration."""
    last = history[-1] if history else {}
    return {
        "epochs": cfg.train.epochs,
        "epochs_run": len(history),
        "min_steps": cfg.train.min_steps,
        "batch_size": cfg.train.batch_size,
        "lr": cfg.train.lr,
        "num_workers": int(history[-1].get("workers", cfg.train.num_workers))
        if history
        else cfg.train.num_workers,
        "seed": cfg.train.seed,
        "n_train": n_train,
        "n_val": n_val,
        "n_seed_items": plan.num_items,
        "seed_unreadable": int(last.get("seed_unreadable", 0)),
        "history": history,
        "calibration": calib.describe(),
        "threshold_detail": threshold_detail,
    }


def _validation(
    classes: list[str], logits: np.ndarray, temperature: float, y: np.ndarray
) -> dict[str, Any]:
    """The calibration set's quality figures (out-of-fold or held-out predictions)."""
    from scipy.special import logsumexp

    raw = calibrate.softmax(logits)
    cal = calibrate.softmax(logits, temperature)
    nll = logsumexp(logits, axis=1) - logits[np.arange(len(y)), y] if len(y) else np.zeros(0)
    return {
        "n": len(y),
        "accuracy": float((raw.argmax(1) == y).mean()) if len(y) else float("nan"),
        "loss": float(nll.mean()) if len(y) else float("nan"),
        "ece_before": float(calibrate.expected_calibration_error(raw, y)),
        "ece_after": float(calibrate.expected_calibration_error(cal, y)),
        "reliability_before": calibrate.reliability_curve(raw, y),
        "reliability_after": calibrate.reliability_curve(cal, y),
        "coverage_precision": calibrate.coverage_precision_curve(cal, y),
        "per_class_accuracy": {
            c: float((raw.argmax(1)[y == i] == i).mean()) if (y == i).any() else None
            for i, c in enumerate(classes)
        },
    }
