"""Train stage: Ray Train fits the classifier, then calibration and thresholds make the card.

The seed listing (ids and labels only) is split on the driver so the validation split is
exactly stratified and reproducible; payloads are decoded inside Ray Data tasks and
streamed to the workers with `get_dataset_shard`.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raylabel import audit as seed_audit
from raylabel import cluster
from raylabel.config import Config
from raylabel.errors import InputError
from raylabel.fit import embed_cache, zero_shot
from raylabel.fit.data import (
    DECODE_CPUS,
    FEEDBACK_URI,
    keep_decoded,
    preprocessor,
    seed_rows_dataset,
    stratified_split,
)
from raylabel.fit.pretrained import pretrained_info, pretrained_local
from raylabel.inputs import seed_labels, sources
from raylabel.io import layout, storage
from raylabel.models.card import (
    CALIBRATION_FILE,
    ModelCard,
    card_line,
    read_card,
    rewrite_card,
)
from raylabel.models.registry import family_for
from raylabel.stats import calibration as calibrate
from raylabel.train import crossfit, promotion, pseudo
from raylabel.train.card import make_card
from raylabel.train.card_multilabel import calibration_table, make_multilabel_card


@dataclass
class TrainResult:
    """What the train stage returns: the published model version, where it lives, its card and the
    training history."""

    model_version: str
    model_uri: str
    card: ModelCard
    history: list[dict[str, float]] = field(default_factory=list)
    duration_s: float = 0.0

    def summary_lines(self) -> list[str]:
        """What `raylabel train` prints: how the model was calibrated, its per-class thresholds (and
        why weak ones are weak), pseudo-labels and time taken."""
        if self.card.task == "multilabel":
            return self._multilabel_lines()
        v = self.card.validation
        calib = self.card.training.get("calibration", {})
        how = (
            f"{calib.get('folds')}-fold cross-fitted"
            if calib.get("method") == "crossfit"
            else "held-out validation"
        )
        lines = [
            f"model {self.model_version} ({self.card.arch}, {len(self.card.classes)} classes) "
            f"-> {self.model_uri}",
            f"calibration ({how}): n={v.get('n')}, accuracy={v.get('accuracy', float('nan')):.3f}, "
            f"ECE {v.get('ece_before', float('nan')):.3f} -> "
            f"{v.get('ece_after', float('nan')):.3f} "
            f"(temperature {self.card.temperature:.2f})",
        ]
        thr = ", ".join(
            f"{c}={t:.2f}{'*' if self.card.threshold_source.get(c) != 'class' else ''}"
            for c, t in self.card.thresholds.items()
        )
        lines.append(
            f"thresholds for precision >= {self.card.target_precision} "
            f"(* = pooled/unreachable): {thr}"
        )
        detail = self.card.training.get("threshold_detail")
        if detail:
            lines += [
                f"  {x}" for x in calibrate.ThresholdResult.from_json(detail).explanation_lines()
            ]
        gate = self.card.training.get("promotion")
        if gate:
            lines.append(gate["reason"])
        pl_line = card_line(self.card.pseudo_labels)
        if pl_line:
            lines.append(pl_line)
        lines.append(f"took {self.duration_s:.1f}s")
        return lines

    def _multilabel_lines(self) -> list[str]:
        from raylabel.train.card_multilabel import summary_lines

        lines = [
            f"model {self.model_version} ({self.card.arch}, multilabel over "
            f"{len(self.card.classes)} classes) -> {self.model_uri}",
            *summary_lines(self.card),
        ]
        gate = self.card.training.get("promotion")
        if gate:
            lines.append(gate["reason"])
        lines.append(f"took {self.duration_s:.1f}s")
        return lines


def train(cfg: Config) -> TrainResult:
    """Fit, calibrate, choose thresholds and publish `models/<version>/`."""
    started = time.time()
    cfg.require("seed.path")
    opts = sources.storage_options(cfg)
    if cfg.run.model_version and layout.model_exists(cfg.output.root, cfg.run.model_version, opts):
        raise InputError(
            f"run.model_version: {layout.model_uri(cfg.output.root, cfg.run.model_version)} "
            "already exists; published models never change (pick a new version)"
        )
    plan = sources.plan_seed(cfg)
    assert plan.listing is not None
    feedback = add_feedback(cfg, plan, opts)
    classes = plan.classes()
    if len(classes) < 2:
        raise InputError(f"seed.path: need at least 2 classes, found {classes} in {plan.uri}")
    chosen = pseudo.for_seed(cfg, plan, classes, opts)
    if chosen.used:
        plan.fingerprint = f"{plan.fingerprint}+pl{chosen.used}"
    cluster.connect(cfg)
    # datasets carry the context they were made in into the workers; per-epoch bars from
    # two workers would drown the epoch lines the driver prints
    cluster.quiet_data_context(show_progress=False)
    audit_info = seed_audit.exclude_from_training(cfg, plan)  # train.audit_seed / exclude_...
    tok, tok_stats = _learn_subword(cfg, plan, opts)
    tok_json = tok.to_json() if tok is not None else None
    version = cfg.run.model_version or layout.new_id("m-")
    with tempfile.TemporaryDirectory(prefix="raylabel-train-") as tmp:
        fam = family_for(cfg.modality, cfg.model.arch)
        pretrained = pretrained_local(cfg, Path(tmp)) if fam.pretrained == "state_dict" else None
        if fam.trains:
            fitted = _fit_seed(cfg, plan, classes, opts, chosen, tok_json, Path(tmp), pretrained)
        else:  # zero-shot: nothing trains, every seed item calibrates
            fitted = _zero_shot(cfg, plan, classes, opts, Path(tmp))
        oof, ckpt_dir, history, n_train, n_val = fitted
        calib = (
            crossfit.calibration_set(
                cfg, plan, classes, oof, feedback, "crossfit" if fam.trains else "zero_shot"
            )
            if oof is not None
            else crossfit.holdout_set(ckpt_dir)
        )
        make = make_multilabel_card if cfg.task == "multilabel" else make_card
        card = make(cfg, classes, plan, calib, history, version, n_train, n_val)
        card.training["n_feedback"] = feedback.num_rows if feedback is not None else 0
        card.training["feedback_by_drop"] = _by_drop(feedback)
        start = pretrained_info(pretrained)
        if start is not None:
            card.preprocessing["pretrained"] = start
            card.training["freeze_backbone"] = cfg.model.freeze_backbone
        card.training["embedding_cache"] = embed_cache.uses_cache(cfg)
        card.training["backbone_lr_scale"] = cfg.train.backbone_lr_scale
        if audit_info is not None:
            card.training["audit"] = audit_info
        card.training["n_pseudo_labels"] = chosen.used
        card.pseudo_labels = chosen.to_card()
        if tok_stats:
            card.preprocessing["tokenizer"].update(tok_stats)
        out_dir = Path(tmp) / "model"
        write_model_dir(cfg, classes, ckpt_dir, card, out_dir)
        if cfg.task == "multilabel":
            pq.write_table(calibration_table(calib, card), out_dir / CALIBRATION_FILE)
        else:
            crossfit.write_calibration(calib, card, out_dir)
        if oof is not None and oof.model_files:
            crossfit.write_fold_models(cfg, classes, oof, card, out_dir, write_model_dir)
        card = read_card(out_dir)  # as written, with the calibration and fold entries
        card.training["promotion"] = promotion.gate(cfg, card, out_dir)
        rewrite_card(card, out_dir)
        uri = layout.publish_model(
            out_dir, cfg.output.root, version, opts, promote=card.training["promotion"]["promoted"]
        )
    return TrainResult(version, uri, card, history, time.time() - started)


Fitted = tuple[Any, Path, list[dict[str, float]], int, int]  # oof, checkpoint, history, n


def _fit_seed(
    cfg: Config,
    plan: sources.SourcePlan,
    classes: list[str],
    opts: storage.StorageOptions,
    chosen: pseudo.PseudoSelection,
    tok_json: str | None,
    tmp: Path,
    pretrained: str | None,
) -> Fitted:
    """Fold models for calibration (crossfit), then the final model by Ray Train."""
    oof = None
    pos_weight = plan.positive_weights(classes)
    if cfg.train.calibration == "crossfit":
        oof = crossfit.run(cfg, plan, classes, opts, pretrained, tok_json)
    if oof is not None and oof.features is not None and not chosen.used:
        # the folds' cached features are the whole seed: the final head trains on them
        train_ds, val_ds, n_train, n_val = oof.features, None, oof.features.count(), 0
    else:
        train_ds, val_ds, n_train, n_val = _seed_datasets(
            cfg, plan, classes, opts, chosen, tok_json, holdout=oof is None
        )
        if embed_cache.uses_cache(cfg):
            train_ds, val_ds = _features(cfg, classes, pretrained, train_ds, val_ds)
    if embed_cache.uses_cache(cfg):
        return oof, *_fit_head(
            cfg, classes, train_ds, val_ds, tmp, n_train, n_val, pretrained, pos_weight
        )
    ckpt_dir, history = _fit(
        cfg, classes, train_ds, val_ds, tmp, n_train, n_val, pretrained, tok_json,
        weighted=chosen.used > 0, pos_weight=pos_weight,
    )  # fmt: skip
    return oof, ckpt_dir, history, n_train, n_val


def _fit_head(
    cfg: Config,
    classes: list[str],
    train_ds: Any,
    val_ds: Any,
    tmp: Path,
    n_train: int,
    n_val: int,
    pretrained: str | None,
    pos_weight: list[float] | None = None,
) -> tuple[Path, list[dict[str, float]], int, int]:
    """The final head on cached features, in one Ray task (`fit.embed_cache.fit_head`)."""
    config, cpus, gpus = _head_task_setup(cfg, classes, pretrained)
    config.update(n_train=n_train, n_val=n_val, use_gpu=cfg.train.use_gpu, pos_weight=pos_weight)
    files, history = embed_cache.fit_head(
        config, train_ds, val_ds, cpus, gpus, cfg.train.max_failures
    )
    ckpt = _unpack(files, tmp / "checkpoint")
    return ckpt, history, n_train, n_val


def _unpack(files: dict[str, bytes], ckpt: Path) -> Path:
    """Checkpoint files returned by a Ray task, as a checkpoint directory."""
    for rel, data in files.items():
        (ckpt / rel).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / rel).write_bytes(data)
    return ckpt


def _zero_shot(
    cfg: Config,
    plan: sources.SourcePlan,
    classes: list[str],
    opts: storage.StorageOptions,
    tmp: Path,
) -> Fitted:
    """The zero-shot model built from the prompts, and its scores of every seed item."""
    oof, files = zero_shot.score_seed(cfg, plan, classes, opts)
    return oof, _unpack(files, tmp / "checkpoint"), [], 0, 0


def write_model_dir(
    cfg: Config, classes: list[str], ckpt_dir: Path, card: ModelCard, out_dir: Path
) -> None:
    """A training checkpoint (Ray Train's or a fold task's) as a loadable model directory."""
    del classes  # the card carries them
    family_for(cfg.modality, cfg.model.arch).write_model_dir(
        ckpt_dir, card, out_dir, cfg.model.dropout
    )


def add_feedback(
    cfg: Config, plan: sources.SourcePlan, opts: storage.StorageOptions
) -> pa.Table | None:
    """Reviewed items from earlier runs join the seed set (the review loop closes here),
    whatever the seed kind: each is read from its kept copy (`payload_uri`), so packed and
    inline-text seeds, packed and inline drops, and deleted drops all train. Returns the
    rows added (with their review design weights), or None."""
    if not cfg.train.use_feedback or plan.listing is None:
        return None
    fb = sources.feedback_listing(cfg.output.root, opts)
    if fb is None or not fb.num_rows:
        return None
    listing = plan.listing
    known = set(listing.column("uri").to_pylist()) if "uri" in listing.column_names else set()
    known |= set(listing.column("item_id").to_pylist())
    share = cfg.train.gate_share  # the promotion gate's evaluation items never train
    uris = fb.column("uri").to_pylist()
    fb = fb.filter(pa.array([u not in known and not promotion.in_gate_set(u, share) for u in uris]))
    if not fb.num_rows:
        return None
    read_from = sources.fetchable(fb)
    labels: Any = fb.column("label")
    if plan.label_separator is not None:  # reviewed sets, in the seed's canonical form
        where = "feedback (reviewed sets)"
        labels = seed_labels.label_strings(labels.to_pylist(), plan.label_separator, where)
    rows = {"item_id": fb.column("item_id"), "label": labels}
    if "uri" in listing.column_names:
        rows["uri"] = read_from
    rows[FEEDBACK_URI] = read_from
    plan.listing = pa.concat_tables(
        [listing, pa.table(rows).cast(_feedback_schema(listing, rows))],
        promote_options="default",
    )
    plan.fingerprint = f"{plan.fingerprint}+fb{fb.num_rows}"
    return fb


def _by_drop(feedback: pa.Table | None) -> dict[str, int]:
    """How many reviewed items of each drop trained (the card's account of the loop)."""
    if feedback is None:
        return {}
    drops = feedback.column("drop").to_pylist()
    return {d: drops.count(d) for d in sorted(set(drops))}


def _feedback_schema(listing: pa.Table, rows: dict[str, Any]) -> pa.Schema:
    """The appended rows' types follow the listing's (a large_string uri stays one)."""
    types = {f.name: f.type for f in listing.schema}
    return pa.schema([(name, types.get(name, pa.string())) for name in rows])


def _seed_datasets(
    cfg: Config,
    plan: sources.SourcePlan,
    classes: list[str],
    opts: storage.StorageOptions,
    chosen: pseudo.PseudoSelection | None = None,
    tokenizer_json: str | None = None,
    holdout: bool = True,
) -> tuple[Any, Any, int, int]:
    """(train, validation, n_train, n_val); without a holdout every seed item trains
    (cross-fitted calibration) and the validation dataset is None."""
    listing = plan.listing
    assert listing is not None
    ids = listing.column("item_id").to_pylist()
    labels = plan.strata_labels()
    if holdout:
        is_val = stratified_split(ids, labels, cfg.train.val_fraction, cfg.train.seed)
    else:
        is_val = np.zeros(len(ids), dtype=bool)
    index = plan.label_index(classes)
    rng = np.random.default_rng(cfg.train.seed)
    decode = preprocessor(cfg, opts, cfg.model.pretrained or "", tokenizer_json)
    feature = family_for(cfg.modality, cfg.model.arch).feature

    def build(mask: np.ndarray, extra: pa.Table | None = None) -> Any:
        rows = np.flatnonzero(mask)
        rows = rows[rng.permutation(len(rows))]  # mix classes across blocks
        ds = seed_rows_dataset(cfg, plan, opts, rows, index, decode, extra, rng)
        ds = ds.map_batches(
            keep_decoded,
            fn_kwargs={"feature": feature},
            batch_format="pyarrow",
            num_cpus=DECODE_CPUS,
        )
        # decode once, not every epoch: seed sets are small next to drops
        return ds.materialize() if cfg.train.cache_decoded else ds

    extra = chosen.table if chosen is not None and chosen.used else None
    n_extra = extra.num_rows if extra is not None else 0
    train_ds = build(~is_val, extra)
    val_ds = build(is_val) if is_val.any() else None
    return train_ds, val_ds, int((~is_val).sum()) + n_extra, int(is_val.sum())


def _features(
    cfg: Config, classes: list[str], pretrained: str | None, train_ds: Any, val_ds: Any
) -> tuple[Any, Any]:
    """The decoded train/validation sets as the frozen body's features (one pass each)."""
    config, cpus, gpus = _head_task_setup(cfg, classes, pretrained)
    val = embed_cache.embed(val_ds, config, cpus, gpus) if val_ds is not None else None
    return embed_cache.embed(train_ds, config, cpus, gpus), val


def _head_task_setup(
    cfg: Config, classes: list[str], pretrained: str | None
) -> tuple[dict[str, Any], float, float]:
    """(adapter config, CPUs, GPUs) of the feature pass and the head task: sized like a fold."""
    from raylabel.fit.folds import fold_cpus, loop_config

    cpus, threads = fold_cpus(cfg.train.cpus_per_worker)
    config = loop_config(cfg, classes, threads, cfg.train.epochs, pretrained)
    return config, cpus, 1.0 if cfg.train.use_gpu else 0.0


def _fit(
    cfg: Config,
    classes: list[str],
    train_ds: Any,
    val_ds: Any,
    tmp: Path,
    n_train: int,
    n_val: int,
    pretrained: str | None = None,
    tokenizer_json: str | None = None,
    weighted: bool = False,
    pos_weight: list[float] | None = None,
) -> tuple[Path, list[dict[str, float]]]:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raylabel.fit.folds import loop_config
    from raylabel.fit.loop import train_loop_per_worker

    t = cfg.train
    workers, cpus, threads = worker_plan(t, cluster.shape())
    config = loop_config(
        cfg, classes, threads, t.epochs, pretrained, tokenizer_json, pos_weight=pos_weight
    )
    config.update(
        n_train=n_train,
        n_val=n_val,
        checkpoint_every=t.checkpoint_every,
        sample_weights=weighted,
    )
    if storage.is_remote(cfg.output.root):
        fs, base = storage.resolve(
            storage.join(cfg.output.root, "_train"), sources.storage_options(cfg)
        )
        run_kwargs: dict[str, Any] = {"storage_path": base, "storage_filesystem": fs}
    else:
        run_kwargs = {"storage_path": str(tmp / "ray_train")}
    datasets = {"train": train_ds} if val_ds is None else {"train": train_ds, "val": val_ds}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=t.use_gpu, resources_per_worker={"CPU": cpus}
        ),
        run_config=RunConfig(
            name=f"raylabel-train-{layout.new_id()}",
            failure_config=FailureConfig(max_failures=t.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            **run_kwargs,
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    local = tmp / "checkpoint"
    result.checkpoint.to_directory(str(local))
    history = json.loads((local / "history.json").read_text())
    for h in history:
        h.setdefault("workers", workers)  # the card records what auto chose
    return local, history


def worker_plan(t: Any, shape: cluster.ClusterShape) -> tuple[int, float, int]:
    """(Ray Train workers, CPUs each reserves, torch threads each runs). On CPU the
    reservation leaves room for the decode tasks that feed the workers (a full one hangs);
    auto (0) on CPU is two workers sharing a node's cores as threads: a small model's ops
    scale poorly over threads, so two single-threaded DDP workers beat one 2-threaded one on
    2 cores despite the all-reduce (bench/train_throughput.py, R vs R1)."""
    if t.use_gpu:
        n = t.num_workers or max(1, int(shape.gpus))
        return n, t.cpus_per_worker, max(1, round(t.cpus_per_worker))
    if t.num_workers:
        cpus = min(t.cpus_per_worker, max(0.25, (shape.cpus - 0.5) / t.num_workers))
        return t.num_workers, cpus, max(1, round(cpus))
    node_cpus = shape.cpus / max(1, shape.nodes)
    n = 2 if node_cpus >= 2 else 1
    return n, max(0.25, (node_cpus - 0.5) / n), max(1, int(node_cpus // n))


def _learn_subword(
    cfg: Config, plan: sources.SourcePlan, opts: storage.StorageOptions
) -> tuple[Any, dict[str, Any]]:
    """Families that learn their tokenizer from the seed (rnn) learn it once, here, before
    the workers start."""
    if not family_for(cfg.modality, cfg.model.arch).learns_tokenizer:
        return None, {}
    from raylabel.train.tokenizer import learn_for_config

    return learn_for_config(cfg, plan, opts)
