"""One attempt of the label pipeline: rows through decode and inference actors, carried rows
beside them, all into the run's sink; then the commit check.

read (driver-planned blocks, or packed row groups) -> FetchDecode tasks (CPU) ->
InferenceActor pool (GPU or CPU, model loaded once per actor) ─┐
carried rows (unchanged items from a donor run's part files) ──┴-> RunSink (labels/ +
errors/ Parquet, small per-task statistics). Nothing but those statistics reaches the
driver; the run commits only if they reconcile with the plan, by count and by ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raylabel import cluster
from raylabel.cluster.faults import cluster_fault
from raylabel.config import Config
from raylabel.inputs import sources
from raylabel.inputs.prepare import for_card
from raylabel.io import layout, storage
from raylabel.io.failures import pipeline_failure
from raylabel.io.schema import label_schema, labels_schema
from raylabel.label.actor import InferenceActor
from raylabel.label.carry import Reuse, carried_dataset
from raylabel.label.pool import PoolPlan, decode_in_actor, plan_pool
from raylabel.label.sink import RunSink, merge_stats
from raylabel.models.card import ModelCard
from raylabel.models.loader import ModelLoader, expected_weights


class ClusterFault(Exception):
    """One pipeline attempt lost to the cluster (node, worker or object lost)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class LabelJob:
    """What every attempt of one `label` call shares: the inputs, the model and tonight's
    thresholds."""

    cfg: Config
    plan: sources.SourcePlan
    opts: storage.StorageOptions
    card: ModelCard
    scorer: str  # "model" or "ensemble"
    thresholds: dict[str, float] | None

    @property
    def ensemble(self) -> bool:
        """Whether the fold ensemble scores the drop."""
        return self.scorer == "ensemble"

    def class_thresholds(self) -> list[float]:
        """Tonight's threshold per class index (re-derived ones override the card's)."""
        t = self.thresholds or {}
        return [
            float(t.get(c, self.card.class_threshold(i))) for i, c in enumerate(self.card.classes)
        ]


def write_run(
    job: LabelJob, run: layout.RunLayout, reuse: Reuse
) -> tuple[PoolPlan, dict[str, Any]]:
    """Run the pipeline into `run` and return the pool used and the merged statistics.
    The pool is planned from the cluster as it is now: after a lost node it may be smaller."""
    cfg, card = job.cfg, job.card
    pool = plan_pool(cfg, cluster.shape(), decode_in_actor(cfg, job.plan))
    sink = RunSink(
        run=run,
        opts=job.opts,
        classes=card.classes,
        bin_edges=list(cfg.review.bin_edges),
        rows_per_file=rows_per_write(
            cfg.output.rows_per_file, job.plan.num_items - len(reuse.reused)
        ),
        schema=labels_schema(card.modality, card.task),
        task=card.task,
    )
    try:
        build_pipeline(job, run, pool, reuse).write_datasink(
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
    reconcile(job.plan, stats, run, job.opts)
    return pool, stats


WRITES_PER_DROP = 8  # a drop smaller than this many files is still written in this many parts
MIN_ROWS_PER_WRITE = 1_000


def rows_per_write(rows_per_file: int, rows: int) -> int:
    """Rows gathered per write task: `output.rows_per_file`, or less for a drop under
    WRITES_PER_DROP such files, so its writes keep pace with labeling instead of all waiting
    for the last batch (a 20k drop used to write its one file after every item was labeled)."""
    share = -(-max(rows, 1) // WRITES_PER_DROP)
    return max(1, min(rows_per_file, max(MIN_ROWS_PER_WRITE, share)))


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


def build_pipeline(job: LabelJob, run: layout.RunLayout, pool: PoolPlan, reuse: Reuse) -> Any:
    """The dataset the sink writes: inferred rows, and carried rows when there are any."""
    card = job.card
    carried = None
    if reuse.parts:
        carried = carried_dataset(
            reuse,
            job.opts,
            label_schema(card.modality),
            card.classes,
            job.class_thresholds(),
            run.run_id,
        )
    if len(reuse.reused) >= job.plan.num_items and carried is not None:
        return carried  # nothing changed but the drop's shape: no model work at all
    inferred = _inference(job, run, pool, reuse)
    return inferred if carried is None else inferred.union(carried)


def _inference(job: LabelJob, run: layout.RunLayout, pool: PoolPlan, reuse: Reuse) -> Any:
    from ray.data import ActorPoolStrategy

    cfg, card, opts = job.cfg, job.card, job.opts
    ds = sources.drop_dataset(
        job.plan, opts, read_cpus=pool.read_cpus, carried=reuse.reused, read_tasks=pool.read_tasks
    )
    model_dir = layout.model_uri(cfg.output.root, card.model_version)
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
        version=card.model_version,
        opts=opts,
        use_gpu=cfg.infer.use_gpu,
        threads=pool.torch_threads,
        ensemble=job.ensemble,
        weights_sha256=expected_weights(card, job.ensemble),
    )
    return ds.map_batches(
        InferenceActor,
        fn_constructor_kwargs={
            "loader": loader,
            "run_id": run.run_id,
            "drop": run.drop,
            "topk": cfg.infer.topk,
            "preprocess": decode if pool.decode_in_actor else None,
            "thresholds": job.thresholds,
            "decode_on_device": cfg.infer.decode_on_device,
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
