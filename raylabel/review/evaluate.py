"""`raylabel evaluate`: reviewed labels of a committed run's sample become accuracy estimates
with intervals, and feedback for the next training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raylabel.config import PULL_REVIEWS, Config
from raylabel.errors import ReviewError
from raylabel.inputs import sources
from raylabel.io import layout, listing, storage
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.report import render_html
from raylabel.review import labelstudio, ml_evaluate
from raylabel.review.push import pull_reviews
from raylabel.review.redraw import review_files, sample_dir
from raylabel.review.runs import run_context
from raylabel.stats.estimate import calibration_flags, estimate_from_reviews

EVALUATIONS = "evaluations"


def _read_sample(folder: str, opts: StorageOptions) -> pa.Table:
    uri = storage.join(folder, "sample.parquet")
    if not storage.exists(uri, opts):
        raise storage.InputNotFound(f"no review sample in {folder}")
    return pq.read_table(pa.BufferReader(storage.read_bytes(uri, opts)))


def _read_queue(run: RunLayout, opts: StorageOptions, sampled: set[str]) -> pa.Table:
    """The uncertain queue reviewers were sent with the sample (items also in the sample
    count as sample items); empty when the run has none."""
    for uri in review_files(run, "uncertain.parquet", opts)[:1]:
        q = pq.read_table(pa.BufferReader(storage.read_bytes(uri, opts)))
        ids = q.column("item_id").to_pylist()
        return q.filter(pa.array([i not in sampled for i in ids], pa.bool_()))
    return pa.table({"item_id": pa.array([], pa.string()), "uri": pa.array([], pa.string())})


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


@dataclass
class EvaluateResult:
    """What `evaluate` found and wrote."""

    evaluation: dict[str, Any]
    feedback_uri: str
    evaluation_uri: str

    def summary_lines(self) -> list[str]:
        """The estimates with intervals, then where the files went."""
        return [
            *evaluation_lines(self.evaluation),
            f"feedback for the next training: {self.feedback_uri}",
            f"evaluation: {self.evaluation_uri}",
        ]


def evaluate_run(cfg: Config) -> EvaluateResult:
    """Reviewed labels -> accuracy estimates with intervals; reviews join the feedback set."""
    cfg.require("review.reviewed")
    run, summary, card, opts = run_context(cfg)
    sources_ = _review_sources(cfg, run, opts)
    paths = [name for _, name in sources_]
    sample_from = sample_dir(run, opts)
    sample = _read_sample(sample_from, opts)
    queue = _read_queue(run, opts, set(sample.column("item_id").to_pylist()))
    known = set(sample.column("item_id").to_pylist()) | set(queue.column("item_id").to_pylist())
    if card.task == "multilabel":
        joined, queued, merged, evaluation = _multilabel(cfg, summary, card, sources_, known,
                                                         sample, queue)  # fmt: skip
    else:
        try:
            merged = labelstudio.merge_reviews(
                [labelstudio.parse_reviews(data, name=name) for data, name in sources_]
            )
            labelstudio.validate_reviews(merged.table, known, card.classes)
        except ValueError as exc:
            raise ReviewError(f"review.reviewed: {exc}") from None
        truth = dict(
            zip(
                merged.table.column("item_id").to_pylist(),
                merged.table.column("true_label").to_pylist(),
                strict=True,
            )
        )
        joined = _join_truth(sample, truth)  # the probability sample: the estimates' only input
        queued = _join_truth(queue, truth)
        evaluation = _estimates(joined, cfg, summary)
    evaluation["other_reviews"] = {
        "uncertain_queue": int(pc.sum(pc.is_valid(queued.column("true_label"))).as_py() or 0),
        "note": "reviews outside the probability sample: feedback for training, not estimates",
    }
    evaluation["repeated_reviews"] = merged.to_json()
    rev_id = layout.new_id("e-")
    folder = run.path(EVALUATIONS, rev_id)
    evaluation.update(
        reviewed_file=",".join(paths),
        sample_dir=sample_from,
        evaluated_at=layout.utc_now().isoformat(),
    )
    storage.write_json(storage.join(folder, "evaluation.json"), evaluation, opts)
    storage.write_text(
        storage.join(folder, "report.html"),
        render_html({**summary, "evaluation": evaluation}),
        opts,
    )
    feedback = write_feedback(
        cfg, run, joined, opts, scorer=summary.get("scorer", "model"), name=rev_id, queue=queued
    )
    layout.commit_revision(run, EVALUATIONS, rev_id, opts)  # the run itself never changes
    return EvaluateResult(evaluation, feedback, storage.join(folder, "evaluation.json"))


def _multilabel(
    cfg: Config,
    summary: dict[str, Any],
    card: Any,
    sources_: list[tuple[bytes, str]],
    known: set[str],
    sample: pa.Table,
    queue: pa.Table,
) -> tuple[pa.Table, pa.Table, labelstudio.MergedReviews, dict[str, Any]]:
    """A multilabel run's reviewed sets: (sample, queue) in the feedback writer's one-string
    layout (sets `seed.label_separator`-joined), the merged verdicts, the estimates."""
    sep = cfg.seed.label_separator
    try:
        merged = ml_evaluate.verdicts(sources_, known, card.classes, sep)
    except ValueError as exc:
        raise ReviewError(f"review.reviewed: {exc}") from None
    joined = ml_evaluate.join_sets(sample, merged)
    evaluation = ml_evaluate.evaluation(joined, cfg.qc.confidence_level, summary, card.classes)
    queued = ml_evaluate.as_feedback(ml_evaluate.join_sets(queue, merged), sep)
    return ml_evaluate.as_feedback(joined, sep), queued, merged, evaluation


def _review_sources(cfg: Config, run: RunLayout, opts: StorageOptions) -> list[tuple[bytes, str]]:
    """(bytes, name) of every review file, or the run's annotations pulled from the Label
    Studio project (`review.reviewed=labelstudio`)."""
    if (cfg.review.reviewed or "").strip() == PULL_REVIEWS:
        return [pull_reviews(cfg, run)]
    paths = [p.strip() for p in (cfg.review.reviewed or "").split(",") if p.strip()]
    for path in paths:
        listing.check_input(path, opts, "review.reviewed")
    return [(storage.read_bytes(p, opts), p) for p in paths]


def latest_evaluation(run: RunLayout, opts: StorageOptions) -> dict[str, Any] | None:
    """The newest committed evaluation of a run (`evaluations/<id>/evaluation.json`)."""
    folder = layout.latest_revision(run, EVALUATIONS, opts)
    if folder is None:
        return None
    return storage.read_json(storage.join(folder, "evaluation.json"), opts)


def evaluation_lines(ev: dict[str, Any]) -> list[str]:
    """Human lines of an evaluation block (the demo prints them too)."""
    lines = [f"{ev['n_reviewed']} reviewed items"]
    for name in ("overall", "accepted"):
        e = ev.get(name)
        if e and e.get("point") is not None:
            lines.append(
                f"  {name:9s} accuracy {e['point']:.1%} "
                f"[{e['lower']:.1%}, {e['upper']:.1%}] ({ev['confidence_level']:.0%} CI, "
                f"n={e['n_reviewed']})"
            )
    for name in ("micro_precision", "micro_recall"):  # multilabel runs
        e = (ev.get("multilabel") or {}).get(name)
        if e and e.get("point") is not None:
            lines.append(
                f"  {name.replace('_', ' ')} (accepted) {e['point']:.1%} "
                f"[{e['lower']:.1%}, {e['upper']:.1%}] (n={e['n_reviewed']})"
            )
    if ev.get("flags"):
        lines.append(f"  {len(ev['flags'])} strata where observed accuracy contradicts confidence")
    return lines


def write_feedback(
    cfg: Config,
    run: RunLayout,
    joined: pa.Table,
    opts: StorageOptions,
    scorer: str = "model",
    name: str = "",
    queue: pa.Table | None = None,
) -> str:
    """Reviewed items become labeled examples (`feedback/<drop>/<run_id>-<eval>.parquet`).
    They keep what makes them calibration evidence too: the model's confidence, the
    sample's design weight, and which model (or fold ensemble) scored them. Reviews of the
    uncertain queue train too, marked `sampled=false` (no design weight: never estimates).
    Each row points at a copy of the item's own bytes (`payload_uri`: a content-addressed
    object under feedback/<drop>/media/, from the run's review/payloads.parquet), so it
    trains whatever the seed and drop kinds are, even after the drop is deleted."""
    reviewed = joined.filter(pc.is_valid(joined.column("true_label")))
    sampled = [True] * reviewed.num_rows
    if queue is not None and queue.num_rows:
        extra = queue.filter(pc.is_valid(queue.column("true_label")))
        if extra.num_rows:
            for c in reviewed.column_names:  # columns only the sample has: null for these
                if c not in extra.column_names:
                    extra = extra.append_column(
                        c, pa.nulls(extra.num_rows, reviewed.schema.field(c).type)
                    )
            extra = extra.select(reviewed.column_names).cast(reviewed.schema)
            reviewed = pa.concat_tables([reviewed, extra])
            sampled += [False] * extra.num_rows
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
            "sampled": pa.array(sampled, pa.bool_()),
            "scorer": pa.array([scorer] * n, pa.string()),
            "payload_uri": _store_payloads(cfg, run, reviewed.column("item_id").to_pylist(), opts),
        }
    )
    # one file per evaluation (`<run>-<evaluation>.parquet`): a later one never overwrites
    stem = f"{run.run_id}-{name}" if name else run.run_id
    uri = storage.join(cfg.output.root, "feedback", run.drop, f"{stem}.parquet")
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    storage.write_bytes(uri, buf.getvalue().to_pybytes(), opts)
    return uri


def _store_payloads(cfg: Config, run: RunLayout, ids: list[str], opts: StorageOptions) -> pa.Array:
    """Copy each reviewed item's bytes (kept when its review files were drawn: the current
    sample's folder, then the run's own for the queue) to
    feedback/<drop>/media/<sha256>, written once per content; their uris, null where no
    bytes were kept (runs labeled before payloads were kept)."""
    import hashlib

    wanted = set(ids)
    uris: dict[str, str] = {}
    media = storage.join(cfg.output.root, "feedback", run.drop, "media")
    for uri in review_files(run, "payloads.parquet", opts):
        t = pq.read_table(pa.BufferReader(storage.read_bytes(uri, opts)))
        for item_id, data in zip(
            t.column("item_id").to_pylist(), t.column("payload").to_pylist(), strict=True
        ):
            if item_id not in wanted or item_id in uris or data is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            target = storage.join(media, digest[:2], digest)
            if not storage.exists(target, opts):
                storage.write_bytes(target, data, opts)
            uris[item_id] = target
    return pa.array([uris.get(i) for i in ids], pa.string())


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
