"""Label stage: stream a drop through decode tasks and an inference actor pool into a run.

read (driver-planned blocks or Parquet) -> FetchDecode tasks (CPU) -> InferenceActor pool
(GPU or CPU, model loaded once per actor) -> RunSink (labels/ + errors/ Parquet, small
per-task statistics). Nothing but those statistics reaches the driver; the run is
committed (`_SUCCESS`, then `LATEST`) only after the counts reconcile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from raylabel import cluster, layout, sources, storage
from raylabel.cluster_faults import cluster_fault
from raylabel.config import Config
from raylabel.inference import InferenceActor, ModelLoader
from raylabel.io_errors import pipeline_failure
from raylabel.models import ModelCard, ModelLoadError
from raylabel.preprocess import FetchDecode
from raylabel.run_sink import RunSink, merge_stats
from raylabel.schema import label_schema

log = logging.getLogger(__name__)


@dataclass
class LabelResult:
    drop: str
    run_id: str
    run_uri: str
    skipped: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
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
            from raylabel.drift import verdict_line

            lines.append(verdict_line(self.summary["drift"]))
        lines.append(f"results: {self.run_uri}")
        return lines


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


@dataclass(frozen=True)
class PoolPlan:
    num_actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    torch_threads: int
    decode_cpus: float
    write_cpus: float = 0.25
    decode_in_actor: bool = False
    read_cpus: float = 1.0


def decode_in_actor(cfg: Config, plan: sources.SourcePlan) -> bool:
    """Whether the inference actors decode their own items. On CPU-only inference over
    inline payloads a separate decode stage only adds an object-store hop and a scheduling
    step per block, and the cores are better spent as one decode+forward actor each; a GPU
    actor (or items fetched one by one from object storage) needs decode tasks to feed it."""
    mode = cfg.infer.decode_in_actor
    if mode != "auto":
        return mode == "always"
    return not cfg.infer.use_gpu and plan.kind == "parquet"


def plan_pool(cfg: Config, shape: cluster.ClusterShape, in_actor: bool = False) -> PoolPlan:
    """Actor count and reservations. Reads, decode, inference and writes each get a share:
    an operator left with no CPU budget stalls (a starved write step holds every labeled
    row in the object store until the end), and a pool that takes every CPU hangs reads."""
    inf = cfg.infer
    write = 0.25
    read = 0.25 if in_actor else 1.0  # Ray Data's default read reservation is a whole CPU
    if inf.use_gpu:
        n = inf.num_actors or max(1, int(shape.gpus))
        cpus = inf.num_cpus_per_actor or 1.0
        return PoolPlan(n, cpus, 1.0, max(1, int(cpus)), 1.0, write, in_actor, read)
    if in_actor and shape.cpus >= 2:
        # one single-threaded actor per core: decode and forward back to back, no thread
        # oversubscription; reads and writes are light and get a quarter CPU each. Ray
        # Data's file-listing task reserves a whole CPU while it runs (not configurable in
        # Ray 2.60), so the actors' reservations leave one CPU free or nothing ever starts.
        n = inf.num_actors or max(1, int(shape.cpus))
        cpus = inf.num_cpus_per_actor or max(0.05, (shape.cpus - 1.0 - write) / n)
        threads = max(1, int(shape.cpus // n))
        return PoolPlan(n, cpus, 0.0, threads, 0.0, write, True, read)
    left = max(0.5, shape.cpus - write)
    n = inf.num_actors or max(1, int(shape.cpus // 2))
    cpus = inf.num_cpus_per_actor or max(0.5, min(4.0, (left - 0.5) / (2 * n)))
    decode = max(0.25, min(1.0, (left - n * cpus) / 2))
    return PoolPlan(n, cpus, 0.0, max(1, round(cpus)), decode, write)


def label(cfg: Config) -> LabelResult:
    started = time.time()
    cfg.require("drop.path")
    opts = sources.storage_options(cfg)
    drop = sources.drop_name(cfg)
    plan = sources.plan_drop(cfg)
    version = cfg.run.model_version or layout.latest_model(cfg.output.root, opts)
    if not version:
        raise storage.InputNotFound(
            f"no trained model under {storage.join(cfg.output.root, 'models')} "
            "(run `raylabel train` first or set run.model_version)"
        )
    model_dir = layout.model_uri(cfg.output.root, version)
    if not storage.exists(storage.join(model_dir, "model_card.json"), opts):
        raise storage.InputNotFound(f"run.model_version: model not found: {model_dir}")
    card = layout.read_card_uri(model_dir, opts)
    if card.modality != cfg.modality:
        raise sources.InputError(
            f"modality: the model {version} is a {card.modality} model, config says {cfg.modality}"
        )
    if card.modality == "text" and card.arch == "rnn":
        from raylabel.text_rnn import require_tokenizer

        require_tokenizer(model_dir, opts)
    if cfg.infer.ensemble and not card.ensemble.get("members"):
        raise ModelLoadError(
            f"infer.ensemble: model {version} has no fold models (train it with "
            "train.calibration=crossfit and train.keep_fold_models=true)"
        )

    previous = layout.latest_run(cfg.output.root, drop, opts)
    if previous and not cfg.run.force:
        prev = layout.RunLayout(cfg.output.root, drop, previous)
        summary = storage.read_json(prev.path("summary.json"), opts)
        if (
            summary.get("input_fingerprint") == plan.fingerprint
            and summary.get("model_version") == version
        ):
            return LabelResult(drop, previous, prev.run_dir, skipped=True, summary=summary)

    run = _fresh_run(cfg, drop, 1, opts)  # an existing run.run_id stops before any Ray work
    scorer = "ensemble" if cfg.infer.ensemble else "model"
    thresholds, thr_info = _tonight_thresholds(cfg, model_dir, card, scorer, opts)
    cluster.connect(cfg)
    cluster.quiet_data_context()
    cluster.limit_object_store(cfg.infer.object_store_mb)
    cluster.bound_actor_start(cfg.infer.actor_start_timeout_s)
    lost: list[dict[str, str]] = []
    for attempt in range(1, cfg.infer.pipeline_attempts + 1):
        if attempt > 1:
            run = _fresh_run(cfg, drop, attempt, opts)
        t_pipeline = time.time()
        try:
            pool, stats = _write_run(cfg, plan, opts, run, card, thresholds)
            break
        except ClusterFault as fault:
            # the attempt's partial output stays under its own run id and never commits
            storage.write_json(run.path("_FAILED"), {"reason": fault.reason}, opts)
            lost.append({"run_id": run.run_id, "reason": fault.reason})
            if attempt == cfg.infer.pipeline_attempts:
                raise RuntimeError(
                    f"drop {drop}: the cluster lost a node or worker in each of {attempt} "
                    f"attempts (infer.pipeline_attempts); last: {fault.reason}; "
                    "nothing committed"
                ) from None
            log.warning(
                "run %s lost to a cluster fault (%s); relabeling the drop as a fresh run",
                run.run_id,
                fault.reason,
            )
    t_written = time.time()
    from raylabel import drift, report, review

    review_info = review.draw_review(cfg, run, card, stats, opts, plan=plan)
    t_review = time.time()
    summary = report.build_summary(
        cfg=cfg,
        run=run,
        card=card,
        plan=plan,
        stats=stats,
        review_info=review_info,
        pool=pool.__dict__,
        durations={
            "plan": t_pipeline - started,
            "pipeline": t_written - t_pipeline,
            "review": t_review - t_written,
        },
        thresholds=thr_info,
    )
    summary["scorer"] = scorer
    summary["durations_s"]["total"] = time.time() - started
    summary["throughput_items_per_s"] = plan.num_items / max(
        summary["durations_s"]["pipeline"], 1e-9
    )
    summary["lost_attempts"] = lost
    summary["drift"] = drift.drift_block(cfg.drift, run, summary, opts)
    storage.write_json(run.path("summary.json"), summary, opts)
    storage.write_text(run.path("report.html"), report.render_html(summary), opts)
    layout.commit_run(run, opts, {"model_version": version, "items": plan.num_items})
    return LabelResult(drop, run.run_id, run.run_dir, summary=summary)


def _tonight_thresholds(
    cfg: Config, model_dir: str, card: ModelCard, scorer: str, opts: storage.StorageOptions
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The card's thresholds, or (qc.use_reviews) re-derived with reviewed items added."""
    from raylabel.recalibrate import label_thresholds

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
        _build_pipeline(cfg, plan, opts, run, card, pool, thresholds).write_datasink(
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
    counted = stats["labeled"] + stats["errors"]
    if counted != plan.num_items:
        storage.write_json(run.path("_FAILED"), {"reason": "count mismatch"}, opts)
        raise RuntimeError(
            f"run {run.run_id}: {plan.num_items} items in but {counted} rows out "
            f"({stats['labeled']} labeled + {stats['errors']} errors); not committed"
        )
    return pool, stats


def _build_pipeline(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    run: layout.RunLayout,
    card: ModelCard,
    pool: PoolPlan,
    thresholds: dict[str, float] | None = None,
) -> Any:
    from ray.data import ActorPoolStrategy

    ds = sources.drop_dataset(plan, opts, read_cpus=pool.read_cpus)
    version = card.model_version
    model_dir = layout.model_uri(cfg.output.root, version)
    # preprocessing must match training: it comes from the model card, not the config
    prep = card.preprocessing
    if cfg.modality == "text":
        from raylabel.text import TokenizeText

        max_length = int(prep.get("max_length", cfg.model.max_length))
        decode: Any = TokenizeText(model_dir, opts, max_length, arch=card.arch)
    else:
        size = int(prep.get("image_size", cfg.model.image_size))
        decode = FetchDecode(opts, size, cfg.infer.max_pixels)
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
        ensemble=cfg.infer.ensemble,
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
