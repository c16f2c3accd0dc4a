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
from raylabel.cluster.faults import cluster_fault
from raylabel.config import Config
from raylabel.errors import ModelLoadError
from raylabel.inputs import sources
from raylabel.inputs.prepare import for_card
from raylabel.io import layout, storage
from raylabel.io.failures import pipeline_failure
from raylabel.io.schema import label_schema
from raylabel.label.actor import InferenceActor
from raylabel.label.pool import PoolPlan, decode_in_actor, plan_pool
from raylabel.label.sink import RunSink, merge_stats
from raylabel.label.summary import build_summary
from raylabel.models.card import ModelCard, ensemble_pays, read_card_uri
from raylabel.models.loader import ModelLoader, expected_weights
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


def label(cfg: Config, guard: Callable[[], None] | None = None) -> LabelResult:
    """Label `drop.path` with the latest (or `run.model_version`) model into a new committed
    run; a drop already labeled with the same inputs and model is left alone. `guard` runs
    right before the commit and may refuse it (the nightly job checks its lease there)."""
    started = time.time()
    cfg.require("drop.path")
    opts = sources.storage_options(cfg)
    drop = sources.drop_name(cfg)
    plan = sources.plan_drop(cfg)
    model_dir, card = _model_for(cfg, opts)
    _refuse_name_clash(cfg, drop, plan, opts)
    unchanged = _unchanged_run(cfg, drop, plan, card.model_version, opts)
    if unchanged is not None:
        return unchanged
    run = _fresh_run(cfg, drop, 1, opts)  # an existing run.run_id stops before any Ray work
    scorer = "ensemble" if use_ensemble(cfg.infer.ensemble, card) else "model"
    thresholds, thr_info = _tonight_thresholds(cfg, model_dir, card, scorer, opts)
    cluster.connect(cfg)
    cluster.quiet_data_context()
    cluster.limit_object_store(cfg.infer.object_store_mb)
    cluster.bound_actor_start(cfg.infer.actor_start_timeout_s)
    t_pipeline = time.time()
    run, pool, stats, lost = _attempts(cfg, plan, opts, run, card, thresholds, scorer == "ensemble")
    times = {"started": started, "pipeline": t_pipeline, "written": time.time()}
    extra = {"scorer": scorer, "lost_attempts": lost}
    summary = _publish(cfg, plan, opts, run, card, pool, stats, thr_info, times, extra, guard)
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
    cfg: Config, drop: str, plan: sources.SourcePlan, version: str, opts: storage.StorageOptions
) -> LabelResult | None:
    """The LATEST run when it labeled the same inputs with the same model (run.force
    relabels)."""
    previous = layout.latest_run(cfg.output.root, drop, opts)
    if not previous or cfg.run.force:
        return None
    prev = layout.RunLayout(cfg.output.root, drop, previous)
    summary = storage.read_json(prev.path("summary.json"), opts)
    same = (
        summary.get("input_fingerprint") == plan.fingerprint
        and summary.get("model_version") == version
    )
    return (
        LabelResult(drop, previous, prev.run_dir, skipped=True, summary=summary) if same else None
    )


def _attempts(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    run: layout.RunLayout,
    card: ModelCard,
    thresholds: dict[str, float] | None,
    ensemble: bool = False,
) -> tuple[layout.RunLayout, PoolPlan, dict[str, Any], list[dict[str, str]]]:
    """Run the pipeline, once more into a fresh run id for each attempt the cluster loses
    (infer.pipeline_attempts): (the run that wrote everything, its pool, stats, lost ones)."""
    lost: list[dict[str, str]] = []
    for attempt in range(1, cfg.infer.pipeline_attempts + 1):
        if attempt > 1:
            run = _fresh_run(cfg, run.drop, attempt, opts)
        try:
            pool, stats = _write_run(cfg, plan, opts, run, card, thresholds, ensemble)
            return run, pool, stats, lost
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
                "run %s lost to a cluster fault (%s); relabeling the drop as a fresh run",
                run.run_id,
                fault.reason,
            )
    raise AssertionError("infer.pipeline_attempts >= 1")  # unreachable: checked by config


def _publish(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    run: layout.RunLayout,
    card: ModelCard,
    pool: PoolPlan,
    stats: dict[str, Any],
    thr_info: dict[str, Any],
    times: dict[str, float],
    extra: dict[str, Any],
    guard: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Review sample, summary.json (with `extra` blocks), report.html, then the commit:
    `_SUCCESS` last."""
    from raylabel.label import drift
    from raylabel.report import render_html
    from raylabel.review import draw_review

    review_info = draw_review(cfg, run, card, stats, opts, plan=plan)
    t_review = time.time()
    durations = {
        "plan": times["pipeline"] - times["started"],
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
    summary["durations_s"]["total"] = time.time() - times["started"]
    summary["throughput_items_per_s"] = plan.num_items / max(durations["pipeline"], 1e-9)
    summary.update(extra)
    summary["drift"] = drift.drift_block(cfg.drift, run, summary, opts)
    storage.write_json(run.path("summary.json"), summary, opts)
    storage.write_text(run.path("report.html"), render_html(summary), opts)
    if guard is not None:
        try:
            guard()
        except Exception as exc:
            storage.write_json(run.path("_FAILED"), {"reason": str(exc)}, opts)
            raise
    layout.commit_run(run, opts, {"model_version": card.model_version, "items": plan.num_items})
    return summary


def _tonight_thresholds(
    cfg: Config, model_dir: str, card: ModelCard, scorer: str, opts: storage.StorageOptions
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The card's thresholds, or (qc.use_reviews) re-derived with reviewed items added."""
    from raylabel.label.recalibrate import label_thresholds

    thresholds, info = label_thresholds(
        cfg.output.root, model_dir, card, scorer, cfg.qc.min_support, opts
    )
    if not cfg.qc.use_reviews:
        n = info["reviewed_items"]
        return None, {**info, "source": "card", "note": f"qc.use_reviews=false ({n} unused)"}
    return thresholds, info


class ClusterFault(Exception):
    """One pipeline attempt lost to the cluster (node, worker or object lost)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def _write_run(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    run: layout.RunLayout,
    card: ModelCard,
    thresholds: dict[str, float] | None = None,
    ensemble: bool = False,
) -> tuple[PoolPlan, dict[str, Any]]:
    """Run the pipeline into `run` and return the pool used and the merged statistics.
    The pool is planned from the cluster as it is now: after a lost node it may be smaller."""
    pool = plan_pool(cfg, cluster.shape(), decode_in_actor(cfg, plan))
    sink = RunSink(
        run=run,
        opts=opts,
        classes=card.classes,
        bin_edges=list(cfg.review.bin_edges),
        rows_per_file=cfg.output.rows_per_file,
        schema=label_schema(card.modality),
    )
    try:
        _build_pipeline(cfg, plan, opts, run, card, pool, thresholds, ensemble).write_datasink(
            sink,
            ray_remote_args={"num_cpus": pool.write_cpus, "max_retries": cfg.infer.max_retries},
        )
    except Exception as exc:
        failure = pipeline_failure(exc, run.run_dir)  # an object-store outage: one clean line
        if failure is not None:
            raise failure from None
        reason = cluster_fault(exc)
        if reason is None:
            raise
        raise ClusterFault(reason) from exc
    stats = merge_stats(sink.results)
    reconcile(plan, stats, run, opts)
    return pool, stats


def reconcile(
    plan: sources.SourcePlan, stats: dict[str, Any], run: layout.RunLayout, opts: Any
) -> None:
    """The commit check: every input row written exactly once, by count and by ids (an
    order-independent hash sum, so a lost row and a doubled one cannot cancel out)."""
    counted = stats["labeled"] + stats["errors"]
    reason = None
    if counted != plan.num_items:
        reason = (
            f"{plan.num_items} items in but {counted} rows out "
            f"({stats['labeled']} labeled + {stats['errors']} errors)"
        )
    elif plan.id_hash is not None and stats.get("id_hash") != plan.id_hash:
        reason = f"{counted} rows out as planned, but not the planned item ids"
    if reason is not None:
        storage.write_json(run.path("_FAILED"), {"reason": reason}, opts)
        raise RuntimeError(f"run {run.run_id}: {reason}; not committed")


def _build_pipeline(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    run: layout.RunLayout,
    card: ModelCard,
    pool: PoolPlan,
    thresholds: dict[str, float] | None = None,
    ensemble: bool = False,
) -> Any:
    from ray.data import ActorPoolStrategy

    ds = sources.drop_dataset(plan, opts, read_cpus=pool.read_cpus)
    version = card.model_version
    model_dir = layout.model_uri(cfg.output.root, version)
    # preprocessing must match training: it comes from the model card, not the config
    decode = for_card(card, model_dir, opts, cfg.infer.max_pixels, cfg.infer.max_item_bytes)
    if not pool.decode_in_actor:
        ds = ds.map_batches(
            decode,
            batch_format="pyarrow",
            batch_size=cfg.infer.preprocess_batch_size,
            num_cpus=pool.decode_cpus,
            max_retries=cfg.infer.max_retries,  # a worker or node lost mid-task: rerun, bounded
        )
    loader = ModelLoader(
        root=cfg.output.root,
        version=version,
        opts=opts,
        use_gpu=cfg.infer.use_gpu,
        threads=pool.torch_threads,
        ensemble=ensemble,
        weights_sha256=expected_weights(card, ensemble),
    )
    return ds.map_batches(
        InferenceActor,
        fn_constructor_kwargs={
            "loader": loader,
            "run_id": run.run_id,
            "drop": run.drop,
            "topk": cfg.infer.topk,
            "preprocess": decode if pool.decode_in_actor else None,
            "thresholds": thresholds,
        },
        compute=ActorPoolStrategy(size=pool.num_actors),
        batch_size=cfg.infer.batch_size,
        batch_format="pyarrow" if pool.decode_in_actor else "numpy",
        num_cpus=pool.cpus_per_actor,
        num_gpus=pool.gpus_per_actor,
        # a dead actor is restarted and its in-flight batches rerun (same rows out)
        max_restarts=-1,
        max_task_retries=cfg.infer.max_retries,
    )
