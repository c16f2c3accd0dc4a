"""summary.json (for monitoring) and report.html (for people) of a labeling run."""

from __future__ import annotations

from typing import Any

from raylabel import __version__
from raylabel.config import Config
from raylabel.layout import RunLayout, utc_now
from raylabel.models import ModelCard
from raylabel.pseudo import pseudo_summary
from raylabel.run_sink import HIST_BINS
from raylabel.sources import SourcePlan


def build_summary(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    plan: SourcePlan,
    stats: dict[str, Any],
    review_info: dict[str, Any],
    pool: dict[str, Any],
    durations: dict[str, float],
) -> dict[str, Any]:
    labeled = stats["labeled"]
    per_class = {}
    for c in card.classes:
        n = stats["per_class"].get(c, 0)
        a = stats["accepted_per_class"].get(c, 0)
        per_class[c] = {
            "labeled": n,
            "accepted": a,
            "coverage": (a / n) if n else None,
            "threshold": card.thresholds.get(c, card.global_threshold),
            "threshold_source": card.threshold_source.get(c, "global"),
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
        "qc": {
            "target_precision": card.target_precision,
            "confidence_level": card.confidence_level,
            "temperature": card.temperature,
            "global_threshold": card.global_threshold,
            "rule": "per-class lowest threshold whose one-sided "
            f"{card.confidence_level:.0%} lower bound of validation precision "
            f">= {card.target_precision}",
        },
        "validation": card.validation,
        "seed_audit": card.training.get("audit"),
        "pseudo_labels": pseudo_summary(card.pseudo_labels),
        "review": review_info,
        "pool": pool,
        "durations_s": dict(durations),
    }


def render_html(summary: dict[str, Any]) -> str:
    from raylabel.report_html import render

    return render(summary)
