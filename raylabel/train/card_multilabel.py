"""The card of a multilabel model: a temperature and two thresholds per class.

Each class is its own binary decision: its sigmoid is calibrated on the out-of-fold logits
with a temperature of its own, then a *positive* threshold (precision of {score >= t}
reaches the per-class target at the qc.bound lower bound) and a *negative* one (the same
for the negative predictive value of {score <= u}) are chosen on those calibrated scores.
The per-class target is qc.target_precision tightened until the accepted calibration
items' whole sets are right often enough (`raylabel.stats.multilabel_sets`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raylabel import __version__
from raylabel.config import Config
from raylabel.inputs import sources
from raylabel.io import layout
from raylabel.models.card import ModelCard
from raylabel.models.registry import family_for
from raylabel.stats import multilabel as ml
from raylabel.stats.label_sets import multi_hot
from raylabel.stats.multilabel_counts import precision_coverage_by_class
from raylabel.stats.multilabel_sets import exact_set_thresholds
from raylabel.train import crossfit
from raylabel.train.card import training_info


def make_multilabel_card(
    cfg: Config,
    classes: list[str],
    plan: sources.SourcePlan,
    calib: crossfit.CalibrationSet,
    history: list[dict[str, float]],
    version: str,
    n_train: int,
    n_val: int,
) -> ModelCard:
    """Per-class temperatures and positive/negative thresholds from the calibration set."""
    logits = np.asarray(calib.logits, dtype=np.float64).reshape(-1, len(classes))
    targets = multi_hot(calib.labels, len(classes))
    temps = ml.fit_class_temperatures(logits, targets, calib.weights)
    probs = ml.sigmoid(logits, temps)
    q = cfg.qc
    thr, rule = exact_set_thresholds(
        probs, targets, classes, q.target_precision, q.confidence_level, q.bound,
        weights=calib.weights,
    )  # fmt: skip
    training = training_info(cfg, plan, calib, history, n_train, n_val, thr.to_json())
    training["exact_set_rule"] = rule.to_json()
    return ModelCard(
        model_version=version,
        arch=cfg.model.arch,
        modality=cfg.modality,
        classes=classes,
        preprocessing=family_for(cfg.modality, cfg.model.arch).card_preprocessing(cfg),
        task="multilabel",
        temperatures=[float(t) for t in temps],
        thresholds={c: float(thr.positive[c]) for c in classes},
        threshold_source=dict(thr.positive_source),
        negative_thresholds={c: float(thr.negative[c]) for c in classes},
        negative_threshold_source=dict(thr.negative_source),
        global_threshold=ml.NEVER_ACCEPT,
        target_precision=q.target_precision,
        confidence_level=q.confidence_level,
        validation=multilabel_validation(classes, logits, temps, targets),
        training=training,
        seed_fingerprint=plan.fingerprint,
        created_at=layout.utc_now().isoformat(),
        raylabel_version=__version__,
    )


def multilabel_validation(
    classes: list[str], logits: np.ndarray, temps: np.ndarray, targets: np.ndarray
) -> dict[str, Any]:
    """The calibration set's quality figures: exact-set accuracy at 0.5, pooled ECE before
    and after, and per class its positives, accuracy and ECE."""
    raw = ml.sigmoid(logits)
    cal = ml.sigmoid(logits, temps)
    n = len(targets)
    if n == 0:
        return {"n": 0, "accuracy": float("nan"), "ece_before": float("nan"),
                "ece_after": float("nan"), "per_class": {}}  # fmt: skip
    exact = ((raw >= 0.5) == (targets > 0.5)).all(1)
    per_class = {
        c: {
            "positives": int(targets[:, i].sum()),
            "accuracy": float(((raw[:, i] >= 0.5) == (targets[:, i] > 0.5)).mean()),
            "ece_after": float(ml.multilabel_ece(cal[:, i : i + 1], targets[:, i : i + 1])),
        }
        for i, c in enumerate(classes)
    }
    return {
        "n": n,
        "accuracy": float(exact.mean()),  # exact-set accuracy of the raw sigmoids at 0.5
        "ece_before": float(ml.multilabel_ece(raw, targets)),
        "ece_after": float(ml.multilabel_ece(cal, targets)),
        "label_cardinality": float(targets.sum(1).mean()),
        # calibrated out-of-fold scores against the seed's labels, per class (the report's curves)
        "precision_coverage": precision_coverage_by_class(cal, targets, classes),
        "per_class": per_class,
    }


def summary_lines(card: ModelCard) -> list[str]:
    """What `raylabel train` prints about a multilabel card: calibration, and per class its
    positive and negative thresholds (and why a side decides nothing)."""
    v = card.validation
    rule = card.training.get("exact_set_rule") or {}
    lines = [
        f"calibration: n={v.get('n')}, exact-set accuracy={v.get('accuracy', float('nan')):.3f}, "
        f"ECE {v.get('ece_before', float('nan')):.3f} -> {v.get('ece_after', float('nan')):.3f} "
        "(a temperature per class)",
        _rule_line(rule, card.target_precision),
        f"per-class thresholds for precision and negative predictive value >= "
        f"{rule.get('class_target', card.target_precision):.4g} "
        "(positive >= t, negative <= u; '-' = never decided):",
    ]
    for c in card.classes:
        t, u = card.thresholds.get(c, ml.NEVER_ACCEPT), card.negative_thresholds.get(c, -1.0)
        pos = f"{t:.2f}" if 0.0 <= t <= 1.0 else "-"
        neg = f"{u:.2f}" if 0.0 <= u <= 1.0 else "-"
        lines.append(f"  {c}: positive >= {pos}, negative <= {neg}")
    detail = card.training.get("threshold_detail")
    if detail:
        lines += [f"  {x}" for x in ml.MultiLabelThresholds.from_json(detail).explanation_lines()]
    return lines


def calibration_table(calib: crossfit.CalibrationSet, card: ModelCard) -> Any:
    """`calibration.parquet` of a multilabel model: each calibration item's calibrated scores
    and true classes (card order), its weight and where it came from."""
    import pyarrow as pa

    k = len(card.classes)
    logits = np.asarray(calib.logits, dtype=np.float64).reshape(-1, k)
    probs = ml.sigmoid(logits, np.asarray(card.temperatures or [1.0] * k))
    targets = multi_hot(calib.labels, k) > 0.5
    n = len(targets)
    return pa.table(
        {
            "item_id": pa.array(calib.item_ids or [""] * n, pa.string()),
            "label_index": pa.array(calib.labels, pa.int32()),  # the bit set of its classes
            "scores": pa.array(list(probs.astype(np.float32)), pa.list_(pa.float32())),
            "targets": pa.array(list(targets), pa.list_(pa.bool_())),
            "weight": pa.array(calib.weights, pa.float64()),
            "source": pa.array(calib.sources or ["seed"] * n, pa.string()),
        }
    )


def _rule_line(rule: dict[str, Any], target: float) -> str:
    """The set-level rule in one line: which per-class target makes whole sets trustworthy."""
    if not rule:
        return "exact-set rule: not recorded"
    if not rule.get("reached"):
        return (
            f"exact-set rule: no per-class target brings the accepted calibration sets to "
            f"{target} (best lower bound {rule.get('lower_bound', 0.0):.3f}); nothing is "
            "accepted until the model improves or the seed grows"
        )
    return (
        f"exact-set rule: per-class target {rule['class_target']:.4g} -> "
        f"{rule['exact']:.0f}/{rule['accepted']:.0f} accepted calibration sets exactly right, "
        f"lower bound {rule['lower_bound']:.3f} >= {target}"
    )
