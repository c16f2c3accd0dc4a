"""The multilabel parts of summary.json: per-class decisions, label sets, and the rule.

`per_class` keeps the multiclass keys (labeled = items where the class is positive,
accepted = those in accepted rows), so monitoring that reads them keeps working; the
`multilabel` block adds what only a set of labels has (undecided counts, cardinality,
co-occurrence) and the two thresholds of every class, for the report.
"""

from __future__ import annotations

from typing import Any

from raylabel.models.card import ModelCard
from raylabel.stats import multilabel as ml


def multilabel_blocks(
    card: ModelCard, stats: dict[str, Any], per_class: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """`task`, the multilabel `per_class` and the `multilabel` block of a run's summary."""
    undecided = stats.get("undecided_per_class") or {}
    labeled = stats["labeled"]
    for c, v in per_class.items():
        v["positive"] = v["labeled"]  # `labeled` stays: the items where the class is positive
        v["undecided"] = int(undecided.get(c, 0))
        v["negative"] = labeled - v["positive"] - v["undecided"]
        v["coverage"] = (labeled - v["undecided"]) / labeled if labeled else None
        v["negative_threshold"] = float(card.negative_thresholds.get(c, ml.NEVER_NEGATIVE))
        v["negative_threshold_source"] = card.negative_threshold_source.get(c, "unreachable")
    validation = card.validation or {}
    return {
        "task": "multilabel",
        "per_class": per_class,
        "coverage": {
            "overall": (stats["accepted"] / labeled) if labeled else 0.0,
            "per_class": {c: v["coverage"] for c, v in per_class.items()},
        },
        "multilabel": {
            "classes": list(card.classes),
            "counts": stats.get("label_sets", {}),
            "thresholds": {
                "positive": dict(card.thresholds),
                "negative": dict(card.negative_thresholds),
                "positive_source": dict(card.threshold_source),
                "negative_source": dict(card.negative_threshold_source),
            },
            "precision_coverage": validation.get("precision_coverage", {}),
            "target_precision": card.target_precision,
        },
    }


def multilabel_qc(card: ModelCard, used: dict[str, Any]) -> dict[str, Any]:
    """How each class was decided: the rule, the bound, and the numbers behind a class that
    decides nothing on one side."""
    detail = card.training.get("threshold_detail") or {}
    method = detail.get("method", "clopper_pearson")
    return {
        "target_precision": card.target_precision,
        "confidence_level": card.confidence_level,
        "bound": method,
        "temperatures": dict(zip(card.classes, card.temperatures, strict=False)),
        "rule": f"per class: positive at or above the lowest score whose one-sided "
        f"{card.confidence_level:.0%} {method} lower bound of precision on calibration items "
        f">= {card.target_precision}; negative at or below the highest score whose bound of "
        "negative predictive value reaches it; otherwise undecided. A row is accepted when no "
        "class is undecided.",
        "calibration": card.training.get("calibration") or {},
        "threshold_source": used.get("source", "card"),
        "note": used.get("note", ""),
        "reviewed_items": int(used.get("reviewed_items", 0)),
        "reviewed_runs": {},
        "explanations": {},
        "explanation_lines": ml.MultiLabelThresholds.from_json(detail).explanation_lines()
        if detail
        else [],
    }
