"""Label stage: stream a drop through decode tasks and an inference actor pool into a run.

read (driver-planned blocks or Parquet) -> FetchDecode tasks (CPU) -> InferenceActor pool
(GPU or CPU, model loaded once per actor) -> RunSink (labels/ + errors/ Parquet, small
per-task statistics). Nothing but those statistics reaches the driver; the run is
committed (`_SUCCESS`, then `LATEST`) only after the counts reconcile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raylabel import cluster
from raylabel.config import Config
from raylabel.errors import ModelLoadError
from raylabel.inputs import sources
from raylabel.io import layout, storage
from raylabel.label.carry import Reuse, donors, plan_reuse, record_attempt
from raylabel.label.pipeline import ClusterFault, LabelJob, write_run
from raylabel.label.pool import PoolPlan
from raylabel.label.summary import build_summary
from raylabel.models.card import ModelCard, ensemble_pays, read_card_uri
from raylabel.models.registry import family_of

log = logging.getLogger(__name__)


@dataclass
class LabelResult:
    """What the label stage returns: the run it committed (or found already done with the same
    inputs and model) and that run's summary."""

    drop: str
    run_id: str
    run_uri: str
    skipped: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """What `raylabel label` prints: counts and coverage, speed, where tonight's thresholds came
        from, lost attempts, the review files and the drift verdict."""
        if self.skipped:
            return [
                f"drop {self.drop}: already labeled by run {self.run_id} with the same inputs "
                "and model (nothing to do; run.force=true relabels)",
                f"results: {self.run_uri}",
            ]
        c = self.summary["counts"]
        cov = self.summary["coverage"]["overall"]
        lines = [
            f"drop {self.drop}: {c['input']} items -> {c['labeled']} labeled, "
            f"{c['errors']} errors, {c['accepted']} accepted ({cov:.1%} coverage)",
            *_skipped_line(c.get("skipped") or {}),
            f"model {self.summary['model_version']}; "
            f"took {self.summary['durations_s']['total']:.1f}s "
            f"({self.summary['throughput_items_per_s']:.0f} items/s)",
        ]
        lines += _threshold_lines(self.summary)
        for lost in self.summary.get("lost_attempts", []):
            lines.append(f"attempt {lost['run_id']} lost ({lost['reason']}); relabeled")
        review = self.summary.get("review")
        if review:
            lines.append(
                f"review sample: {review['size']} items in {review['strata']} strata; "
                f"uncertain list: {review['uncertain']} items"
            )
        if "drift" in self.summary:
            from raylabel.label.drift import verdict_line

            lines.append(verdict_line(self.summary["drift"]))
        lines.append(f"results: {self.run_uri}")
        return lines


def _skipped_line(skipped: dict[str, int]) -> list[str]:
    """Files under the drop that were not items, by reason (nothing disappears unnoticed)."""
    if not skipped:
        return []
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
    return [f"not items (skipped files): {parts}"]


def _threshold_lines(summary: dict[str, Any]) -> list[str]:
    """Where tonight's thresholds came from, and why each class that accepts little does."""
    qc = summary.get("qc", {})
    lines = []
    if qc.get("threshold_source") == "card+reviews":
        lines.append(
            f"thresholds re-derived from {qc.get('calibration', {}).get('items', '?')} "
            f"calibration items + {qc['reviewed_items']} reviewed items "
            f"({len(qc.get('reviewed_runs', {}))} runs)"
        )
    weak = {
        c
        for c, v in summary.get("per_class", {}).items()
        if v.get("labeled") and (v.get("coverage") or 0.0) < 0.2
    }
    for line in qc.get("explanation_lines", []):
        if line.split(":", 1)[0] in weak:
            lines.append(f"  low coverage, {line}")
    return lines


def label(
    cfg: Config, guard: Callable[[], None] | None = None, new_inputs_only: bool = False
) -> LabelResult:
    """Label `drop.path` with the latest (or `run.model_version`) model into a new committed
    run. A drop already labeled with the same inputs and model is left alone; a drop that
    grew or changed gets a new complete run in which unchanged items are carried from the
    previous one, and an attempt that died is finished rather than redone (`carry`).
    `guard` runs right before the commit and may refuse it (nightly checks its lease);
    `new_inputs_only` (nightly) leaves a drop whose inputs did not change alone even when the
    model did, so a promotion does not relabel every drop ever seen."""
    started = time.time()
    cfg.require("drop.path")
    opts = sources.storage_options(cfg)
    drop = sources.drop_name(cfg)
    plan = sources.plan_drop(cfg)
    model_dir, card = _model_for(cfg, opts)
    _refuse_name_clash(cfg, drop, plan, opts)
    unchanged = _unchanged_run(cfg, drop, plan, card.model_version, opts, new_inputs_only)
    if unchanged is not None:
        return unchanged
    run = _fresh_run(cfg, drop, 1, opts)  # an existing run.run_id stops before any Ray work
    scorer = "ensemble" if use_ensemble(cfg.infer.ensemble, card) else "model"
    thresholds, thr_info = _tonight_thresholds(cfg, model_dir, card, scorer, opts)
    job = LabelJob(cfg, plan, opts, card, scorer, thresholds)
    t_connect = time.time()
    cluster.connect(cfg)
    cluster.quiet_data_context()
    cluster.limit_object_store(cfg.infer.object_store_mb)
    cluster.bound_actor_start(cfg.infer.actor_start_timeout_s)
    t_pipeline = time.time()
    run, pool, stats, lost, reuse = _attempts(job, run)
    times = {
        "started": started,
        "connect": t_connect,
        "pipeline": t_pipeline,
        "written": time.time(),
    }
    extra = {"scorer": scorer, "lost_attempts": lost, "carried_from": reuse.donors}
    counts = {
        "reused": len(reuse.reused),
        "inferred": plan.num_items - len(reuse.reused),
        "removed": reuse.removed,
    }
    summary = _publish(job, run, pool, stats, thr_info, times, extra, counts, guard)
    return LabelResult(drop, run.run_id, run.run_dir, summary=summary)


def _model_for(cfg: Config, opts: storage.StorageOptions) -> tuple[str, ModelCard]:
    """The model directory and card to label with, checked before any work starts."""
    version = cfg.run.model_version or layout.latest_model(cfg.output.root, opts)
    if not version:
        raise storage.InputNotFound(
            f"no trained model under {storage.join(cfg.output.root, 'models')} "
            "(run `raylabel train` first or set run.model_version)"
        )
    model_dir = layout.model_uri(cfg.output.root, version)
    if not storage.exists(storage.join(model_dir, "model_card.json"), opts):
        raise storage.InputNotFound(f"run.model_version: model not found: {model_dir}")
    card = read_card_uri(model_dir, opts)
    if card.modality != cfg.modality:
        raise sources.InputError(
            f"modality: the model {version} is a {card.modality} model, config says {cfg.modality}"
        )
    family_of(card).check_model_dir(model_dir, opts)  # e.g. an rnn model needs its tokenizer
    if cfg.infer.ensemble == "always" and not card.ensemble.get("members"):
        raise ModelLoadError(
            f"infer.ensemble: model {version} has no fold models (train it with "
            "train.calibration=crossfit and train.keep_fold_models=always)"
        )
    return model_dir, card


def use_ensemble(mode: str, card: ModelCard) -> bool:
    """`infer.ensemble`: always / never, or auto = the card has fold models and a small seed
    (fewer calibration items per class than where the small-seed benchmark saw a gain)."""
    if mode != "auto":
        return mode == "always"
    items = int(card.training.get("calibration", {}).get("items", 0) or 0)
    has_folds = bool(card.ensemble.get("members"))
    return has_folds and ensemble_pays(items, len(card.classes))


def _refuse_name_clash(
    cfg: Config, drop: str, plan: sources.SourcePlan, opts: storage.StorageOptions
) -> None:
    """A derived drop name ("night 1" -> "night_1") that already names another drop's runs
    stops here, naming both, before the two drops share (and overwrite) one history."""
    if cfg.drop.name:
        return  # chosen explicitly: sharing a name is the user's decision
    previous = layout.latest_run(cfg.output.root, drop, opts)
    if not previous:
        return
    summary = storage.read_json(layout.RunLayout(cfg.output.root, drop, previous).path(
        "summary.json"), opts)  # fmt: skip
    other = (summary.get("input") or {}).get("uri")
    if other and other != plan.uri:
        raise sources.InputError(
            f"drop.name: {plan.uri!r} and {other!r} would both be named {drop!r}; "
            "set drop.name to keep their runs apart"
        )


def _unchanged_run(
    cfg: Config,
    drop: str,
    plan: sources.SourcePlan,
    version: str,
    opts: storage.StorageOptions,
    any_model: bool = False,
) -> LabelResult | None:
    """The LATEST run when it labeled the same inputs with the same model (or, `any_model`,
    with any model); run.force relabels."""
    previous = layout.latest_run(cfg.output.root, drop, opts)
    if not previous or cfg.run.force:
        return None
    prev = layout.RunLayout(cfg.output.root, drop, previous)
    summary = storage.read_json(prev.path("summary.json"), opts)
    same = summary.get("input_fingerprint") == plan.fingerprint and (
        any_model or summary.get("model_version") == version
    )
    return (
        LabelResult(drop, previous, prev.run_dir, skipped=True, summary=summary) if same else None
    )


def _attempts(
    job: LabelJob, run: layout.RunLayout
) -> tuple[layout.RunLayout, PoolPlan, dict[str, Any], list[dict[str, str]], Reuse]:
    """Run the pipeline, once more into a fresh run id for each attempt the cluster loses
    (infer.pipeline_attempts), each reusing what the earlier ones wrote: (the run that wrote
    everything, its pool, stats, the lost attempts, what was carried)."""
    cfg, opts = job.cfg, job.opts
    version = job.card.model_version
    lost: list[dict[str, str]] = []
    first = run.run_id  # run.force: relabel everything, reusing only this command's attempts
    for attempt in range(1, cfg.infer.pipeline_attempts + 1):
        if attempt > 1:
            run = _fresh_run(cfg, run.drop, attempt, opts)
        donor_runs, committed = donors(cfg.output.root, run.drop, version, job.scorer, opts)
        if job.card.task == "multilabel":  # multilabel rows are not carried yet: all inferred
            donor_runs = []
        if cfg.run.force:
            donor_runs = [d for d in donor_runs if d.run_id >= first]
        reuse = plan_reuse(job.plan, cfg.output.root, run.drop, donor_runs, committed, opts)
        record_attempt(run, job.plan, version, job.scorer, opts)
        try:
            pool, stats = write_run(job, run, reuse)
            return run, pool, stats, lost, reuse
        except ClusterFault as fault:
            # the attempt's partial output stays under its own run id and never commits
            storage.write_json(run.path("_FAILED"), {"reason": fault.reason}, opts)
            lost.append({"run_id": run.run_id, "reason": fault.reason})
            if attempt == cfg.infer.pipeline_attempts:
                raise RuntimeError(
                    f"drop {run.drop}: the cluster lost a node or worker in each of {attempt} "
                    f"attempts (infer.pipeline_attempts); last: {fault.reason}; "
                    "nothing committed"
                ) from None
            log.warning(
                "run %s lost to a cluster fault (%s); a fresh run finishes the drop",
                run.run_id,
                fault.reason,
            )
    raise AssertionError("infer.pipeline_attempts >= 1")  # unreachable: checked by config


def _publish(
    job: LabelJob,
    run: layout.RunLayout,
    pool: PoolPlan,
    stats: dict[str, Any],
    thr_info: dict[str, Any],
    times: dict[str, float],
    extra: dict[str, Any],
    counts: dict[str, int],
    guard: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Review sample, summary.json (with `extra` blocks), report.html, then the commit:
    `_SUCCESS` last."""
    from raylabel.label import drift
    from raylabel.report import render_html
    from raylabel.review import draw_review

    cfg, plan, opts, card = job.cfg, job.plan, job.opts, job.card
    review_info = _review_surviving_node_loss(job, run, stats, draw_review)
    t_review = time.time()
    durations = {
        "plan": times["connect"] - times["started"],
        "connect": times["pipeline"] - times["connect"],
        "pipeline": times["written"] - times["pipeline"],
        "review": t_review - times["written"],
    }
    summary = build_summary(
        cfg=cfg,
        run=run,
        card=card,
        plan=plan,
        stats=stats,
        review_info=review_info,
        pool=pool.__dict__,
        durations=durations,
        thresholds=thr_info,
    )
    summary["counts"].update(counts)
    inferred = max(counts.get("inferred", plan.num_items), 1)
    summary["throughput_items_per_s"] = inferred / max(durations["pipeline"], 1e-9)
    summary.update(extra)
    summary["drift"] = drift.drift_block(cfg.drift, run, summary, opts)
    summary["durations_s"]["summary"] = time.time() - t_review
    summary["durations_s"]["total"] = time.time() - times["started"]
    summary["durations_s"]["report"] = _write_report(run, summary, opts, render_html)
    summary["durations_s"]["total"] = time.time() - times["started"]
    storage.write_json(run.path("summary.json"), summary, opts)
    if guard is not None:
        try:
            guard()
        except Exception as exc:
            storage.write_json(run.path("_FAILED"), {"reason": str(exc)}, opts)
            raise
    layout.commit_run(run, opts, {"model_version": card.model_version, "items": plan.num_items})
    return summary


def _write_report(
    run: layout.RunLayout,
    summary: dict[str, Any],
    opts: storage.StorageOptions,
    render: Callable[[dict[str, Any]], str],
) -> float:
    """report.html (its timings stop before the report itself); returns the seconds it took."""
    t0 = time.time()
    storage.write_text(run.path("report.html"), render(summary), opts)
    return time.time() - t0


def _review_surviving_node_loss(
    job: LabelJob, run: layout.RunLayout, stats: dict[str, Any], draw: Callable[..., Any]
) -> dict[str, Any]:
    """Draw the review files; a node lost during their scan of the written labels redraws
    them (the labels are already safe), up to infer.pipeline_attempts times."""
    from raylabel.cluster.faults import cluster_fault

    for attempt in range(1, job.cfg.infer.pipeline_attempts + 1):
        try:
            return draw(job.cfg, run, job.card, stats, job.opts, plan=job.plan)
        except Exception as exc:
            reason = cluster_fault(exc)
            if reason is None or attempt == job.cfg.infer.pipeline_attempts:
                raise
            log.warning(
                "review of run %s lost to a cluster fault (%s); redrawing", run.run_id, reason
            )
    raise AssertionError("infer.pipeline_attempts >= 1")  # unreachable: checked by config


def _tonight_thresholds(
    cfg: Config, model_dir: str, card: ModelCard, scorer: str, opts: storage.StorageOptions
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The card's thresholds, or (qc.use_reviews) re-derived with reviewed items added."""
    from raylabel.label.recalibrate import label_thresholds

    if card.task == "multilabel":
        note = "multilabel: the card's per-class thresholds (reviews do not re-derive them yet)"
        return None, {"source": "card", "note": note, "reviewed_items": 0}
    thresholds, info = label_thresholds(
        cfg.output.root, model_dir, card, scorer, cfg.qc.min_support, opts
    )
    if not cfg.qc.use_reviews:
        n = info["reviewed_items"]
        return None, {**info, "source": "card", "note": f"qc.use_reviews=false ({n} unused)"}
    return thresholds, info


def _fresh_run(
    cfg: Config, drop: str, attempt: int, opts: storage.StorageOptions
) -> layout.RunLayout:
    """The run an attempt writes into: a new id each time, so a lost attempt's stragglers
    can never land in the run that commits (an explicit run.run_id gets an -aN suffix)."""
    if cfg.run.run_id:
        run_id = cfg.run.run_id if attempt == 1 else f"{cfg.run.run_id}-a{attempt}"
    else:
        run_id = layout.new_id("r-")
    run = layout.RunLayout(cfg.output.root, drop, run_id)
    if storage.exists(run.run_dir, opts):
        raise sources.InputError(f"run.run_id: {run.run_dir} already exists; runs are immutable")
    return run
