"""summary.json (for monitoring) and report.html (for people) of a labeling run."""

from __future__ import annotations

from typing import Any

from raylabel import __version__
from raylabel.config import Config
from raylabel.inputs.sources import SourcePlan
from raylabel.io.layout import RunLayout, utc_now
from raylabel.label.multilabel_summary import multilabel_blocks, multilabel_qc
from raylabel.label.sink import HIST_BINS
from raylabel.models.card import ModelCard, pseudo_summary
from raylabel.stats.thresholds import ThresholdResult


def build_summary(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    plan: SourcePlan,
    stats: dict[str, Any],
    review_info: dict[str, Any],
    pool: dict[str, Any],
    durations: dict[str, float],
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's machine-readable summary; ``thresholds`` is what labeling used (the card's,
    or re-derived with reviewed items; see `recalibrate.label_thresholds`)."""
    labeled = stats["labeled"]
    used = thresholds or {}
    thr = used.get("thresholds") or card.thresholds
    src = used.get("threshold_source") or card.threshold_source
    per_class = {}
    for c in card.classes:
        n = stats["per_class"].get(c, 0)
        a = stats["accepted_per_class"].get(c, 0)
        per_class[c] = {
            "labeled": n,
            "accepted": a,
            "coverage": (a / n) if n else None,
            "threshold": thr.get(c, card.global_threshold),
            "threshold_source": src.get(c, "global"),
        }
    return {
        "run_id": run.run_id,
        "drop": run.drop,
        "model_version": card.model_version,
        "modality": card.modality,
        "arch": card.arch,
        "classes": card.classes,
        "created_at": utc_now().isoformat(),
        "raylabel_version": __version__,
        "input": {"uri": plan.uri, "kind": plan.kind},
        "input_fingerprint": plan.fingerprint,
        "output": {"run_dir": run.run_dir},
        "counts": {
            "input": plan.num_items,
            "labeled": labeled,
            "errors": stats["errors"],
            "accepted": stats["accepted"],
            "needs_review": labeled - stats["accepted"],
            "duplicates": plan.duplicates,
            # files under the drop that are not items, by reason: never silently gone
            "skipped": dict(plan.skipped),
        },
        "coverage": {
            "overall": (stats["accepted"] / labeled) if labeled else 0.0,
            "per_class": {c: v["coverage"] for c, v in per_class.items()},
        },
        "per_class": per_class,
        "errors_by_stage": stats["errors_by_stage"],
        "error_examples": stats["error_examples"],
        "confidence_histogram": {
            "edges": [i / HIST_BINS for i in range(HIST_BINS + 1)],
            "per_class": stats["hist"],
        },
        "strata": stats["strata"],
        "qc": _qc_block(card, used) if card.task != "multilabel" else multilabel_qc(card, used),
        "validation": card.validation,
        "seed_audit": card.training.get("audit"),
        "pseudo_labels": pseudo_summary(card.pseudo_labels),
        "review": review_info,
        "pool": pool,
        "durations_s": dict(durations),
    } | (multilabel_blocks(card, stats, per_class) if card.task == "multilabel" else {})


def _qc_block(card: ModelCard, used: dict[str, Any]) -> dict[str, Any]:
    """How acceptance was decided tonight, with the numbers behind every weak class."""
    detail = used.get("detail") or card.training.get("threshold_detail") or {}
    method = detail.get("method", "clopper_pearson")
    calibration = card.training.get("calibration") or {
        "method": "holdout",
        "items": card.validation.get("n"),
    }
    bound = {"point": "point estimate", "wilson": "Wilson lower bound"}.get(
        method, "Clopper-Pearson lower bound"
    )
    return {
        "target_precision": card.target_precision,
        "confidence_level": card.confidence_level,
        "bound": method,
        "temperature": card.temperature,
        "global_threshold": detail.get("global_threshold", card.global_threshold),
        "rule": f"per-class lowest threshold whose one-sided {card.confidence_level:.0%} "
        f"{bound} of precision on calibration items >= {card.target_precision}; classes "
        "without enough own evidence use the pooled threshold unless their items contradict it",
        "calibration": calibration,
        "threshold_source": used.get("source", "card"),
        "reviewed_items": int(used.get("reviewed_items", 0)),
        "reviewed_runs": used.get("reviewed_runs", {}),
        "explanations": detail.get("explanations", {}),
        "explanation_lines": ThresholdResult.from_json(detail).explanation_lines()
        if detail.get("thresholds")
        else [],
    }
