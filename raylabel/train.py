"""Train stage: Ray Train fits the classifier, then calibration and thresholds make the card.

The seed listing (ids and labels only) is split on the driver so the validation split is
exactly stratified and reproducible; payloads are decoded inside Ray Data tasks and
streamed to the workers with `get_dataset_shard`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel import __version__, calibrate, cluster, crossfit, layout, pseudo, sources, storage
from raylabel import audit as seed_audit
from raylabel.config import Config
from raylabel.models import ModelCard, build_image_model, save_model_dir
from raylabel.preprocess import FetchDecode
from raylabel.sources import InputError

SEED_BLOCK_ROWS = 256
DECODE_CPUS = 0.25


@dataclass
class TrainResult:
    model_version: str
    model_uri: str
    card: ModelCard
    history: list[dict[str, float]] = field(default_factory=list)
    duration_s: float = 0.0

    def summary_lines(self) -> list[str]:
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
        pl_line = pseudo.card_line(self.card.pseudo_labels)
        if pl_line:
            lines.append(pl_line)
        lines.append(f"took {self.duration_s:.1f}s")
        return lines


def stratified_split(
    item_ids: list[str], labels: list[str], val_fraction: float, seed: int
) -> np.ndarray:
    """Boolean mask of validation items: in each class the ceil(f*n) ids with the lowest hash."""
    ids = np.asarray(item_ids, dtype=object)
    labs = np.asarray(labels, dtype=object)
    keys = np.array([_hash64(f"{seed}\x1f{i}") for i in item_ids], dtype=np.uint64)
    is_val = np.zeros(len(ids), dtype=bool)
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labs == cls)
        if len(idx) < 2:
            continue  # a one-item class can only train
        k = min(len(idx) - 1, max(1, int(np.ceil(val_fraction * len(idx)))))
        order = idx[np.argsort(keys[idx], kind="stable")]
        is_val[order[:k]] = True
    return is_val


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def train(cfg: Config) -> TrainResult:
    """Fit, calibrate, choose thresholds and publish `models/<version>/`."""
    started = time.time()
    cfg.require("seed.path")
    opts = sources.storage_options(cfg)
    plan = sources.plan_seed(cfg)
    assert plan.listing is not None
    feedback = _add_feedback(cfg, plan, opts)
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
        pretrained = _pretrained_local(cfg, Path(tmp)) if cfg.modality == "image" else None
        oof = None
        if cfg.train.calibration == "crossfit":
            oof = crossfit.run(cfg, plan, classes, opts, pretrained, tok_json)
        train_ds, val_ds, n_train, n_val = _seed_datasets(
            cfg, plan, classes, opts, chosen, tok_json, holdout=oof is None
        )
        ckpt_dir, history = _fit(
            cfg, classes, train_ds, val_ds, Path(tmp), n_train, n_val, pretrained, tok_json,
            weighted=chosen.used > 0,
        )  # fmt: skip
        calib = (
            crossfit.calibration_set(cfg, plan, classes, oof, feedback)
            if oof is not None
            else crossfit.holdout_set(ckpt_dir)
        )
        card = _make_card(cfg, classes, plan, calib, history, version, n_train, n_val)
        card.training["n_feedback"] = feedback.num_rows if feedback is not None else 0
        if audit_info is not None:
            card.training["audit"] = audit_info
        card.training["n_pseudo_labels"] = chosen.used
        card.pseudo_labels = chosen.to_card()
        if tok_stats:
            card.preprocessing["tokenizer"].update(tok_stats)
        out_dir = Path(tmp) / "model"
        write_model_dir(cfg, classes, ckpt_dir, card, out_dir)
        crossfit.write_calibration(calib, card, out_dir)
        if oof is not None and oof.model_files:
            crossfit.write_fold_models(cfg, classes, oof, card, out_dir, write_model_dir)
        uri = layout.publish_model(out_dir, cfg.output.root, version, opts)
    return TrainResult(version, uri, card, history, time.time() - started)


def write_model_dir(
    cfg: Config, classes: list[str], ckpt_dir: Path, card: ModelCard, out_dir: Path
) -> None:
    """A training checkpoint (Ray Train's or a fold task's) as a loadable model directory."""
    if cfg.modality == "text":
        rnn = (ckpt_dir / "rnn").is_dir()
        _save_text_model(ckpt_dir / ("rnn" if rnn else "hf"), card, out_dir)
        return
    from safetensors.torch import load_file

    model = build_image_model(cfg.model.arch, len(classes), cfg.model.dropout)
    model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors")), strict=True)
    save_model_dir(model, card, out_dir)


def _save_text_model(hf_dir: Path, card: ModelCard, out_dir: Path) -> None:
    """save_pretrained output (safetensors weights + tokenizer) plus our card."""
    import shutil

    from raylabel.models import CARD_FILE, WEIGHTS_FILE, sha256_file

    shutil.copytree(hf_dir, out_dir)
    card.weights_sha256 = sha256_file(out_dir / WEIGHTS_FILE)
    (out_dir / CARD_FILE).write_text(json.dumps(card.to_json(), indent=2))


def _add_feedback(
    cfg: Config, plan: sources.SourcePlan, opts: storage.StorageOptions
) -> pa.Table | None:
    """Reviewed items from earlier runs join the seed set (the review loop closes here);
    returns the rows added (with their review design weights), or None."""
    if not cfg.train.use_feedback or plan.kind == "parquet" or plan.listing is None:
        return None
    if "text" in plan.listing.column_names:  # inline-text seeds: feedback uris are not fetchable
        return None
    fb = sources.feedback_listing(cfg.output.root, opts)
    if fb is None or not fb.num_rows:
        return None
    known = set(plan.listing.column("uri").to_pylist())
    fb = fb.filter(pa.array([u not in known for u in fb.column("uri").to_pylist()]))
    cols = ["item_id", "uri", "label"]
    plan.listing = pa.concat_tables([plan.listing.select(cols), fb.select(cols)])
    plan.fingerprint = f"{plan.fingerprint}+fb{fb.num_rows}"
    return fb


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
    labels = listing.column("label").to_pylist()
    if holdout:
        is_val = stratified_split(ids, labels, cfg.train.val_fraction, cfg.train.seed)
    else:
        is_val = np.zeros(len(ids), dtype=bool)
    index = {c: i for i, c in enumerate(classes)}
    rng = np.random.default_rng(cfg.train.seed)
    decode = preprocessor(cfg, opts, cfg.model.pretrained or "", tokenizer_json)
    feature = "input_ids" if cfg.modality == "text" else "pixels"

    def build(mask: np.ndarray, extra: pa.Table | None = None) -> Any:
        rows = np.flatnonzero(mask)
        rows = rows[rng.permutation(len(rows))]  # mix classes across blocks
        ds = seed_rows_dataset(cfg, plan, opts, rows, index, decode, extra, rng)
        ds = ds.map_batches(
            _keep_decoded,
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


def seed_rows_dataset(
    cfg: Config,
    plan: sources.SourcePlan,
    opts: storage.StorageOptions,
    rows: np.ndarray,
    index: dict[str, int],
    decode: Any,
    extra: pa.Table | None = None,
    rng: np.random.Generator | None = None,
) -> Any:
    """The seed listing's `rows` (in that order) as a decoded Ray dataset, read from a packed
    Parquet seed or fetched by URI; `extra` pseudo-labeled rows join a listing seed. Shared
    by training (train/val split) and the seed audit (one dataset per fold)."""
    import ray.data

    listing = plan.listing
    assert listing is not None
    if plan.kind == "parquet":
        fs, _ = storage.resolve(plan.uri, opts)
        paths = [storage.resolve(f, opts)[1] for f in plan.parquet_files or []]
        keep = set(listing.column("item_id").take(pa.array(rows)).to_pylist())
        ds = ray.data.read_parquet(paths, filesystem=fs).select_columns(
            ["item_id", plan.payload_column, cfg.seed.label_column]
        )
        ds = ds.map_batches(
            _select_parquet_rows,
            fn_kwargs={
                "keep": keep,
                "index": index,
                "payload": plan.payload_column,
                "label_column": cfg.seed.label_column,
                "inline": plan.inline_column,
            },
            batch_format="pyarrow",
        )
    else:
        label_index = pa.array([index[v] for v in listing.column("label").to_pylist()], pa.int32())
        keep_cols = ["item_id", "uri"] + (["text"] if "text" in listing.column_names else [])
        table = listing.select(keep_cols).append_column("label_index", label_index)
        table = table.take(pa.array(rows))
        if extra is not None and extra.num_rows:  # pseudo-labels: training split only
            assert rng is not None
            table = pseudo.training_rows(table, extra, index, cfg.train.pseudo_labels.weight, rng)
        ds = sources.listing_dataset(table, SEED_BLOCK_ROWS)
    return ds.map_batches(decode, batch_format="pyarrow", batch_size=128, num_cpus=DECODE_CPUS)


def preprocessor(
    cfg: Config, opts: storage.StorageOptions, model_uri: str, tokenizer_json: str | None = None
) -> Any:
    """The modality's CPU preprocessing callable (decode+resize, or tokenize)."""
    if cfg.modality == "text":
        from raylabel.text import TokenizeText

        return TokenizeText(
            model_uri,
            opts,
            cfg.model.max_length,
            arch=cfg.model.arch,
            tokenizer_json=tokenizer_json,
        )
    return FetchDecode(opts, cfg.model.image_size, max_pixels=cfg.infer.max_pixels)


def _select_parquet_rows(
    batch: pa.Table,
    keep: set[str],
    index: dict[str, int],
    payload: str,
    label_column: str,
    inline: str = "bytes",
) -> pa.Table:
    ids = batch.column("item_id").cast(pa.string()).to_pylist()
    mask = pa.array([i in keep for i in ids])
    t = batch.filter(mask)
    return pa.table(
        {
            "item_id": t.column("item_id").cast(pa.string()),
            "uri": t.column("item_id").cast(pa.string()),
            inline: t.column(payload),
            "label_index": pa.array(
                [index[str(v)] for v in t.column(label_column).to_pylist()], pa.int32()
            ),
        }
    )


def _keep_decoded(batch: pa.Table, feature: str = "pixels") -> pa.Table:
    import pyarrow.compute as pc

    ok = batch.filter(pc.is_null(batch.column("error")))
    weight = ["weight"] if "weight" in ok.column_names else []
    return ok.select([feature, "label_index", *weight])


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
) -> tuple[Path, list[dict[str, float]]]:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raylabel.folds import loop_config
    from raylabel.train_loop import train_loop_per_worker

    shape = cluster.shape()
    t = cfg.train
    cpus = t.cpus_per_worker
    if not t.use_gpu:
        # leave room for the decode tasks that feed the workers (a full reservation hangs)
        cpus = min(cpus, max(0.25, (shape.cpus - 0.5) / t.num_workers))
    config = loop_config(cfg, classes, max(1, round(cpus)), t.epochs, pretrained, tokenizer_json)
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
            num_workers=t.num_workers, use_gpu=t.use_gpu, resources_per_worker={"CPU": cpus}
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
    return local, history


def _pretrained_local(cfg: Config, tmp: Path) -> str | None:
    """Copy `model.pretrained` (a safetensors state dict, local or URI) to local disk."""
    if not cfg.model.pretrained:
        return None
    opts = sources.storage_options(cfg)
    storage.check_input(cfg.model.pretrained, opts, "model.pretrained")
    if not cfg.model.pretrained.endswith(".safetensors"):
        raise InputError("model.pretrained: must be a .safetensors state dict (no pickles)")
    dest = tmp / "pretrained.safetensors"
    dest.write_bytes(storage.read_bytes(cfg.model.pretrained, opts))
    return str(dest)


def _learn_subword(
    cfg: Config, plan: sources.SourcePlan, opts: storage.StorageOptions
) -> tuple[Any, dict[str, Any]]:
    """model.arch=rnn: learn the subword tokenizer once, here, before the workers start."""
    if cfg.modality != "text" or cfg.model.arch != "rnn":
        return None, {}
    from raylabel import subword

    return subword.learn_for_config(cfg, plan, opts)


def _preprocessing(cfg: Config) -> dict[str, Any]:
    if cfg.modality == "text" and cfg.model.arch == "rnn":
        from raylabel.text_rnn import card_preprocessing

        return card_preprocessing(cfg)
    if cfg.modality == "text":
        return {
            "max_length": cfg.model.max_length,
            "tokenizer": "saved with the model (save_pretrained)",
            "padding": "dynamic, per batch",
            "truncation": "longest items cut to max_length tokens (rows say truncated=true)",
            "base_model": cfg.model.pretrained,
        }
    return {
        "image_size": cfg.model.image_size,
        "mode": "RGB",
        "resize": "bilinear",
        "input": "uint8 NCHW",
        "normalize": "imagenet mean/std inside the model",
    }


def _make_card(
    cfg: Config,
    classes: list[str],
    plan: sources.SourcePlan,
    calib: crossfit.CalibrationSet,
    history: list[dict[str, float]],
    version: str,
    n_train: int,
    n_val: int,
) -> ModelCard:
    """Temperature and thresholds from the calibration set; the card records how."""
    logits, y = calib.logits, calib.labels
    temperature = calibrate.fit_temperature(logits, y)
    cal = calibrate.softmax(logits, temperature)
    q = cfg.qc
    thr = calibrate.choose_thresholds(
        cal, y, classes, q.target_precision, q.confidence_level, q.min_support, q.bound,
        weights=calib.weights,
    )  # fmt: skip
    thr.calibration = calib.describe()
    last = history[-1] if history else {}
    return ModelCard(
        model_version=version,
        arch=cfg.model.arch,
        modality=cfg.modality,
        classes=classes,
        preprocessing=_preprocessing(cfg),
        temperature=float(temperature),
        thresholds={c: float(v) for c, v in thr.thresholds.items()},
        threshold_source=dict(thr.source),
        global_threshold=float(thr.global_threshold),
        target_precision=q.target_precision,
        confidence_level=q.confidence_level,
        validation=_validation(classes, logits, temperature, y),
        training={
            "epochs": cfg.train.epochs,
            "epochs_run": len(history),
            "min_steps": cfg.train.min_steps,
            "batch_size": cfg.train.batch_size,
            "lr": cfg.train.lr,
            "num_workers": cfg.train.num_workers,
            "seed": cfg.train.seed,
            "n_train": n_train,
            "n_val": n_val,
            "n_seed_items": plan.num_items,
            "seed_unreadable": int(last.get("seed_unreadable", 0)),
            "history": history,
            "calibration": calib.describe(),
            "threshold_detail": thr.to_json(),
        },
        seed_fingerprint=plan.fingerprint,
        created_at=layout.utc_now().isoformat(),
        raylabel_version=__version__,
    )


def _validation(
    classes: list[str], logits: np.ndarray, temperature: float, y: np.ndarray
) -> dict[str, Any]:
    """The calibration set's quality figures (out-of-fold or held-out predictions)."""
    from scipy.special import logsumexp

    raw = calibrate.softmax(logits)
    cal = calibrate.softmax(logits, temperature)
    nll = logsumexp(logits, axis=1) - logits[np.arange(len(y)), y] if len(y) else np.zeros(0)
    return {
        "n": len(y),
        "accuracy": float((raw.argmax(1) == y).mean()) if len(y) else float("nan"),
        "loss": float(nll.mean()) if len(y) else float("nan"),
        "ece_before": float(calibrate.expected_calibration_error(raw, y)),
        "ece_after": float(calibrate.expected_calibration_error(cal, y)),
        "reliability_before": calibrate.reliability_curve(raw, y),
        "reliability_after": calibrate.reliability_curve(cal, y),
        "coverage_precision": calibrate.coverage_precision_curve(cal, y),
        "per_class_accuracy": {
            c: float((raw.argmax(1)[y == i] == i).mean()) if (y == i).any() else None
            for i, c in enumerate(classes)
        },
    }
