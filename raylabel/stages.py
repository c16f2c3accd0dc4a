"""The `sample` and `evaluate` stages, which work on an already committed run."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raylabel import labelstudio, layout, sources, storage
from raylabel.config import Config
from raylabel.estimate import calibration_flags, estimate_from_reviews
from raylabel.layout import RunLayout
from raylabel.storage import StorageOptions


class ReviewError(ValueError):
    """Reviewed labels that do not fit the run (unknown ids or classes, malformed file)."""


def committed_run(cfg: Config) -> RunLayout:
    """`run.run_id` of the drop, or its LATEST committed run; uncommitted runs are refused."""
    opts = sources.storage_options(cfg)
    drop = sources.drop_name(cfg)
    run_id = cfg.run.run_id or layout.latest_run(cfg.output.root, drop, opts)
    if not run_id:
        raise storage.InputNotFound(
            f"no committed run for drop {drop!r} under {storage.join(cfg.output.root, 'runs')}"
        )
    if not layout.is_committed(cfg.output.root, drop, run_id, opts):
        raise storage.InputNotFound(f"run.run_id: run {run_id} of {drop!r} is not committed")
    return RunLayout(cfg.output.root, drop, run_id)


def _run_context(cfg: Config) -> tuple[RunLayout, dict[str, Any], Any, StorageOptions]:
    opts = sources.storage_options(cfg)
    run = committed_run(cfg)
    summary = storage.read_json(run.path("summary.json"), opts)
    card = layout.read_card_uri(layout.model_uri(cfg.output.root, summary["model_version"]), opts)
    return run, summary, card, opts


def _rewrite_summary(run: RunLayout, summary: dict[str, Any], opts: StorageOptions) -> None:
    from raylabel import report

    storage.write_json(run.path("summary.json"), summary, opts)
    storage.write_text(run.path("report.html"), report.render_html(summary), opts)


def resample(cfg: Config) -> list[str]:
    """Redraw the review sample of a committed run (new review.size / seed / allocation)."""
    from raylabel import cluster, review

    run, summary, card, opts = _run_context(cfg)
    cluster.connect(cfg)
    cluster.quiet_data_context()
    stats = {"strata": summary["strata"], "hist": summary["confidence_histogram"]["per_class"]}
    info = review.draw_review(cfg, run, card, stats, opts)
    summary["review"] = info
    summary.pop("evaluation", None)
    _rewrite_summary(run, summary, opts)
    return [
        f"review sample of {run.drop}/{run.run_id}: {info['size']} items in {info['strata']} "
        f"strata (seed {info['seed']}, {info['allocation_method']}); "
        f"uncertain list: {info['uncertain']}",
        f"files: {run.review_dir}",
    ]


def _read_sample(run: RunLayout, opts: StorageOptions) -> pa.Table:
    uri = storage.join(run.review_dir, "sample.parquet")
    if not storage.exists(uri, opts):
        raise storage.InputNotFound(f"no review sample in {run.review_dir}")
    return pq.read_table(pa.BufferReader(storage.read_bytes(uri, opts)))


def _join_truth(sample: pa.Table, truth: dict[str, str]) -> pa.Table:
    ids = sample.column("item_id").to_pylist()
    return sample.append_column("true_label", pa.array([truth.get(i) for i in ids], pa.string()))


def _estimates(joined: pa.Table, cfg: Config, summary: dict[str, Any]) -> dict[str, Any]:
    level = cfg.qc.confidence_level
    est = estimate_from_reviews(
        joined,
        confidence_level=level,
        populations=summary.get("strata"),
        classes=summary.get("classes"),
    )
    reviewed = joined.column("true_label").drop_null()
    return {
        "n_reviewed": len(reviewed),
        "confidence_level": level,
        "target_precision": summary.get("qc", {}).get("target_precision"),
        "estimates": {
            "overall": est["overall"].to_json(),
            "accepted": est["accepted"].to_json() if "accepted" in est else None,
        },
        "overall": est["overall"].to_json(),
        "accepted": est["accepted"].to_json() if "accepted" in est else None,
        "per_class": {c: e.to_json() for c, e in est["per_class"].items()},
        "flags": calibration_flags(joined, confidence_level=level),
    }


def evaluate_run(cfg: Config) -> list[str]:
    """Reviewed labels -> accuracy estimates with intervals; reviews join the feedback set."""
    cfg.require("review.reviewed")
    run, summary, card, opts = _run_context(cfg)
    path = cfg.review.reviewed or ""
    storage.check_input(path, opts, "review.reviewed")
    sample = _read_sample(run, opts)
    try:
        reviews = labelstudio.parse_reviews(storage.read_bytes(path, opts), name=path)
        labelstudio.validate_reviews(
            reviews, set(sample.column("item_id").to_pylist()), card.classes
        )
    except ValueError as exc:
        raise ReviewError(f"review.reviewed: {exc}") from None
    truth = dict(
        zip(
            reviews.column("item_id").to_pylist(),
            reviews.column("true_label").to_pylist(),
            strict=False,
        )
    )
    joined = _join_truth(sample, truth)
    evaluation = _estimates(joined, cfg, summary)
    evaluation["reviewed_file"] = path
    evaluation["evaluated_at"] = layout.utc_now().isoformat()
    storage.write_json(run.path("evaluation.json"), evaluation, opts)
    feedback = write_feedback(cfg, run, joined, opts, scorer=summary.get("scorer", "model"))
    summary["evaluation"] = evaluation
    _rewrite_summary(run, summary, opts)
    return [
        *evaluation_lines(evaluation),
        f"feedback for the next training: {feedback}",
        f"evaluation: {run.path('evaluation.json')}",
    ]


def evaluation_lines(ev: dict[str, Any]) -> list[str]:
    lines = [f"{ev['n_reviewed']} reviewed items"]
    for name in ("overall", "accepted"):
        e = ev.get(name)
        if e and e.get("point") is not None:
            lines.append(
                f"  {name:9s} accuracy {e['point']:.1%} "
                f"[{e['lower']:.1%}, {e['upper']:.1%}] ({ev['confidence_level']:.0%} CI, "
                f"n={e['n_reviewed']})"
            )
    if ev.get("flags"):
        lines.append(f"  {len(ev['flags'])} strata where observed accuracy contradicts confidence")
    return lines


def write_feedback(
    cfg: Config, run: RunLayout, joined: pa.Table, opts: StorageOptions, scorer: str = "model"
) -> str:
    """Reviewed items become labeled examples (`feedback/<drop>/<run_id>.parquet`). They
    keep what makes them calibration evidence too: the model's confidence, the sample's
    design weight, and which model (or fold ensemble) scored them."""
    reviewed = joined.filter(pc.is_valid(joined.column("true_label")))
    n = reviewed.num_rows

    def col(name: str, typ: pa.DataType) -> pa.Array:
        if name in reviewed.column_names:
            return reviewed.column(name).cast(typ)
        return pa.nulls(n, typ)

    table = pa.table(
        {
            "item_id": reviewed.column("item_id"),
            "uri": reviewed.column("uri"),
            "label": reviewed.column("true_label"),
            "predicted": reviewed.column("label"),
            "drop": pa.array([run.drop] * n, pa.string()),
            "run_id": pa.array([run.run_id] * n, pa.string()),
            "model_version": col("model_version", pa.string()),
            "confidence": col("confidence", pa.float64()),
            "weight": col("weight", pa.float64()),
            "sampled": pa.array([True] * n, pa.bool_()),
            "scorer": pa.array([scorer] * n, pa.string()),
        }
    )
    uri = storage.join(cfg.output.root, "feedback", run.drop, f"{run.run_id}.parquet")
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    storage.write_bytes(uri, buf.getvalue().to_pybytes(), opts)
    return uri


def evaluate_with_truth(cfg: Config, run_dir: str, truth: dict[str, str]) -> dict[str, Any] | None:
    """A simulated reviewer who answers with the truth (demo and tests only)."""
    opts = sources.storage_options(cfg)
    uri = storage.join(run_dir, "review", "sample.parquet")
    if not storage.exists(uri, opts):
        return None
    sample = pq.read_table(pa.BufferReader(storage.read_bytes(uri, opts)))
    if not sample.num_rows:
        return None
    summary = storage.read_json(storage.join(run_dir, "summary.json"), opts)
    return _estimates(_join_truth(sample, truth), cfg, summary)
