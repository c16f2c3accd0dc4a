"""k-fold out-of-fold predictions over the seed: the machinery the seed audit and the
cross-fitted calibration share.

Every seed item gets logits from a model that never trained on it. The seed is dealt into
k stratified, deterministic folds; each fold's items are decoded once into the object
store; the k fold models train side by side as Ray tasks (`fold_model.fit_fold`), each on
the other k-1 folds, and predict their own fold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel import cluster
from raylabel.config import Config
from raylabel.fit.embed_cache import embedded_folds, uses_cache
from raylabel.inputs import sources
from raylabel.inputs.sources import SourcePlan
from raylabel.io.storage import StorageOptions
from raylabel.models.registry import family_for


def fold_assignment(item_ids: list[str], labels: list[str], folds: int, seed: int) -> np.ndarray:
    """Stratified, deterministic folds: in each class, ids in hash order dealt round-robin."""
    keys = np.array([_hash64(f"{seed}\x1faudit\x1f{i}") for i in item_ids], dtype=np.uint64)
    labs = np.asarray(labels, dtype=object)
    out = np.zeros(len(item_ids), dtype=np.int32)
    offset = 0
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labs == cls)
        order = idx[np.argsort(keys[idx], kind="stable")]
        # rotate the start per class so small classes do not all pile into fold 0
        out[order] = (np.arange(len(order)) + offset) % folds
        offset += len(order)
    return out


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


@dataclass
class OutOfFold:
    """Out-of-fold logits per seed-listing row (NaN rows: unreadable), and each row's fold."""

    logits: np.ndarray
    fold: np.ndarray
    steps: list[int] = field(default_factory=list)
    model_files: list[dict[str, bytes]] = field(default_factory=list)
    #: every seed row's cached head inputs (`train.embedding_cache`), for the final model
    features: Any = None

    @property
    def readable(self) -> np.ndarray:
        """Rows that got logits (decodable items): the audit and the calibration leave the others
        out instead of scoring NaNs."""
        return ~np.isnan(self.logits).any(axis=1)


def fold_datasets(
    cfg: Config,
    plan: SourcePlan,
    classes: list[str],
    folds: np.ndarray,
    opts: StorageOptions,
    k: int,
    tokenizer_json: str | None = None,
) -> list[Any]:
    """One decoded, materialized dataset per fold (row, features, label_index).

    Materialized before any fold task starts (blocks in the object store, never on the
    driver): a fold task then only reads blocks, so k tasks holding every CPU cannot starve
    the decode tasks they would otherwise wait for.
    """
    from raylabel.fit.data import DECODE_CPUS, preprocessor, seed_rows_dataset

    listing = plan.listing
    assert listing is not None
    index = plan.label_index(classes)
    ids = listing.column("item_id").to_pylist()
    row_of = {i: r for r, i in enumerate(ids)}
    decode = preprocessor(cfg, opts, cfg.model.pretrained or "", tokenizer_json)
    feature = family_for(cfg.modality, cfg.model.arch).feature
    rng = np.random.default_rng(cfg.train.seed)
    out = []
    for f in range(k):
        rows = np.flatnonzero(folds == f)
        rows = rows[rng.permutation(len(rows))]
        ds = seed_rows_dataset(cfg, plan, opts, rows, index, decode)
        ds = ds.map_batches(
            _keep_rows,
            fn_kwargs={"feature": feature, "row_of": row_of},
            batch_format="pyarrow",
            num_cpus=DECODE_CPUS,
        )
        out.append(ds.materialize())
    return out


def _keep_rows(batch: pa.Table, feature: str, row_of: dict[str, int]) -> pa.Table:
    """Decoded items only, keyed by their row in the seed listing (numeric: torch-friendly)."""
    import pyarrow.compute as pc

    ok = batch.filter(pc.is_null(batch.column("error")))
    rows = pa.array([row_of[str(i)] for i in ok.column("item_id").to_pylist()], pa.int64())
    cols = {"row": rows, feature: ok.column(feature), "label_index": ok["label_index"]}
    return pa.table(cols)


def out_of_fold(
    fold_ds: list[Any],
    n_rows: int,
    n_classes: int,
    config: dict[str, Any],
    cpus: float,
    gpus: float,
    max_retries: int,
    keep_models: bool = False,
) -> OutOfFold:
    """The k fold tasks in parallel (each trains on the other folds, predicts its own)."""
    import ray

    from raylabel.fit.fold_model import fit_fold

    features = None
    if config.get("head_only"):  # one pass of the frozen body for all k fold models
        fold_ds, features = embedded_folds(fold_ds, config, cpus, gpus)
    k = len(fold_ds)
    remote = ray.remote(fit_fold).options(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries)
    refs = []
    for f in range(k):
        others = [fold_ds[g] for g in range(k) if g != f]
        train_ds = others[0].union(*others[1:]).materialize() if len(others) > 1 else others[0]
        n_train = int(sum(d.count() for d in others))
        cfg_f = {**config, "n_train": max(1, n_train)}
        refs.append(remote.remote(cfg_f, f, train_ds, fold_ds[f], keep_models))
    logits = np.full((n_rows, n_classes), np.nan)
    fold = np.full(n_rows, -1, dtype=np.int32)
    result = OutOfFold(logits, fold, features=features)
    for res in sorted(ray.get(refs), key=lambda r: r["fold"]):
        if len(res["rows"]):
            logits[res["rows"]] = res["logits"]
            fold[res["rows"]] = res["fold"]
        result.steps.append(int(res["steps"]))
        if keep_models:
            result.model_files.append(res["files"])
    return result


def fold_cpus(requested: float) -> tuple[float, int]:
    """(CPUs each fold task reserves, torch threads it uses) on the cluster as it is."""
    cpus = min(requested, max(0.1, cluster.shape().cpus))
    return cpus, max(1, round(cpus))


def loop_config(
    cfg: Config,
    classes: list[str],
    threads: int,
    epochs: int,
    pretrained_local: str | None,
    tokenizer_json: str | None = None,
    use_gpu: bool = False,
    pos_weight: list[float] | None = None,
) -> dict[str, Any]:
    """The adapters' config, exactly as the real training builds it for its workers;
    `pos_weight`: multilabel BCE weights of each class's positives."""
    t = cfg.train
    fam = family_for(cfg.modality, cfg.model.arch)
    return {
        "arch": cfg.model.arch,
        "num_classes": len(classes),
        "task": cfg.task,
        "pos_weight": pos_weight,
        "dropout": cfg.model.dropout,
        "epochs": epochs,
        "min_steps": t.min_steps,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "backbone_lr_scale": t.backbone_lr_scale,
        "weight_decay": t.weight_decay,
        "seed": t.seed,
        "augment": t.augment,
        "warmup_fraction": t.warmup_fraction,
        "threads": threads,
        "modality": cfg.modality,
        "classes": classes,
        "freeze_encoder": cfg.model.freeze_encoder,
        "freeze_backbone": cfg.model.freeze_backbone,
        "tokenizer_json": tokenizer_json,
        "rnn": _rnn(cfg),
        "pretrained": pretrained_local if fam.pretrained == "state_dict" else None,
        "pretrained_uri": cfg.model.pretrained if fam.pretrained == "directory" else None,
        "storage": sources.storage_options(cfg),
        "worker_cache_mb": t.worker_cache_mb,
        "use_gpu": use_gpu,
        "head_only": uses_cache(cfg),
        "prompts": cfg.model.prompts,
    }


def _rnn(cfg: Config) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(cfg.model.rnn)
