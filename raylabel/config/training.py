"""`train.*` (with self-training) and `audit.*`: how the model is fit and the seed checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from raylabel.config.fields import (
    AUDIT_METHODS,
    AUDIT_SCORES,
    AUGMENTATIONS,
    CALIBRATIONS,
    EMBEDDING_CACHE_MODES,
    ENSEMBLE_MODES,
    PSEUDO_GATES,
    at_least,
    in_range,
    one_of,
    positive,
    setting,
)


@dataclass
class PseudoLabelConfig:
    """Self-training: accepted labels of earlier committed runs join the training set."""

    enabled: bool = setting(
        False,
        "self-training: add accepted labels of earlier committed runs as down-weighted "
        "pseudo-labels while review evidence allows",
    )
    weight: float = setting(0.3, "per-sample loss weight of a pseudo-label (human labels weigh 1)")
    max_items: int = setting(2000, "at most this many pseudo-labels in all")
    max_seed_ratio: float = setting(
        1.0,
        "... and at most this times the number of labeled training items",
    )
    max_per_class_ratio: float = setting(
        1.0,
        "per class at most this times the candidates of the smallest class (class balance)",
    )
    max_runs: int = setting(
        3, "the newest committed runs (one per drop) to draw pseudo-labels from"
    )
    gate: str = setting(
        "lower",
        "which part of the latest review-based estimate of accepted precision must reach "
        "qc.target_precision: its lower bound or the point estimate",
        PSEUDO_GATES,
    )
    require_estimate: bool = setting(
        True,
        "refuse pseudo-labels when no reviewed run exists, and use only runs reviewed themselves",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        in_range("train.pseudo_labels.weight", self.weight, 0.0, 1.0, lo_open=True)
        at_least("train.pseudo_labels.max_items", self.max_items, 1)
        positive("train.pseudo_labels.max_seed_ratio", self.max_seed_ratio)
        at_least("train.pseudo_labels.max_per_class_ratio", self.max_per_class_ratio, 1.0)
        at_least("train.pseudo_labels.max_runs", self.max_runs, 1)
        one_of("train.pseudo_labels.gate", self.gate, PSEUDO_GATES)


@dataclass
class TrainConfig:
    """`raylabel train`: optimisation, Ray Train resources, calibration and what joins training."""

    epochs: int = setting(8, "passes over the seed (raised when needed to reach train.min_steps)")
    batch_size: int = setting(64, "items per optimizer step on each worker")
    lr: float = setting(
        2e-3, "peak AdamW learning rate (linear warm-up, then cosine decay per step)"
    )
    weight_decay: float = setting(1e-4, "AdamW weight decay")
    backbone_lr_scale: float = setting(
        1.0,
        "a pretrained start's body learns at train.lr x this (the class head at train.lr): "
        "below 1 keeps more of what pretraining learned; images with model.pretrained, "
        "transformers text",
    )
    num_workers: int = setting(
        0,
        "Ray Train workers (DDP), each on a shard of the seed; 0 = auto: one per GPU with "
        "train.use_gpu, otherwise two workers (one on a 1-CPU node) sharing a node's CPUs as "
        "torch threads (on 2 cores two single-threaded workers beat one with 2 threads once "
        "epochs are cached: bench/train_throughput.py)",
    )
    use_gpu: bool = setting(False, "train on GPUs, one per worker")
    cpus_per_worker: float = setting(
        1.0,
        "CPUs each training worker reserves; on CPU the reservation is capped so decode tasks"
        " always have room",
    )
    val_fraction: float = setting(
        0.2,
        "train.calibration=holdout: the stratified share of the seed (exact per class) that "
        "calibrates and never trains",
    )
    calibration: str = setting(
        "crossfit",
        "what calibration and thresholds are fit on: crossfit = out-of-fold predictions of "
        "every seed item; holdout = a train.val_fraction split",
        CALIBRATIONS,
    )
    calibration_folds: int = setting(
        5,
        "crossfit: stratified folds; k fold models train like the final model",
    )
    keep_fold_models: str = setting(
        "auto",
        "keep the fold models in models/<version>/folds/ for infer.ensemble; auto = only for "
        "small seeds (fewer than 75 items per class), where the ensemble pays",
        ENSEMBLE_MODES,
    )
    min_steps: int = setting(
        300,
        "at least this many optimizer steps per worker whatever the seed size (epochs are "
        "raised to reach it); 0 = train.epochs only",
    )
    seed: int = setting(
        0,
        "random seed of the validation split, folds, shuffles and the pseudo-label choice",
    )
    augment: str = setting(
        "flip",
        "training augmentation: flips and small shifts; rot90 adds quarter turns "
        "(orientation-free classes); _affine adds per-item zoom, tilt, shift, brightness and "
        "contrast (small seeds)",
        AUGMENTATIONS,
    )
    warmup_fraction: float = setting(
        0.1,
        "share of the steps with linear learning-rate warm-up before the cosine decay",
    )
    gate_share: float = setting(
        0.2,
        "share of reviewed items (a fixed hash of their uri) kept out of training as the "
        "promotion gate's evaluation set; 0 = no gate",
    )
    gate_margin: float = setting(
        0.02,
        "a retrained model becomes models/LATEST only if its accuracy and its coverage at "
        "the card thresholds on the gate set are each at most this much below the current "
        "model's",
    )
    gate_min_items: int = setting(
        30,
        "fewer gate items than this: the candidate is promoted without a comparison (the "
        "card says so)",
    )
    max_failures: int = setting(
        0,
        "restarts of the Ray Train worker group after a worker dies; it resumes from the "
        "latest checkpoint",
    )
    checkpoint_every: int = setting(
        1,
        "epochs between training checkpoints (weights, optimizer and schedule state as "
        "safetensors + JSON; the last epoch always); a restarted worker group resumes there",
    )
    cache_decoded: bool = setting(
        True,
        "decode the seed once into the object store instead of every epoch",
    )
    embedding_cache: str = setting(
        "auto",
        "images with model.freeze_backbone: auto = the frozen body's features of each seed item "
        "are computed once (Ray Data) and only the head trains on them, for every fold model "
        "and the final one (no augmentation; batch-norm keeps the pretrained statistics); "
        "never = the whole model runs every step",
        EMBEDDING_CACHE_MODES,
    )
    worker_cache_mb: int = setting(
        1024,
        "each training worker keeps its decoded image shard after epoch 1 (up to this many "
        "MiB) and reshuffles it locally instead of streaming it again; 0 = stream every epoch",
    )
    use_feedback: bool = setting(
        True,
        "add reviewed items from output.root/feedback/ to the training set",
    )
    audit_seed: bool = setting(
        False,
        "run (or reuse) the seed audit before training and record it on the model card",
    )
    exclude_label_issues: bool = setting(
        False,
        "train without the seed items the audit flags (runs the audit if needed); use once "
        "the fold models are strong",
    )
    pseudo_labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        at_least("train.epochs", self.epochs, 1)
        in_range("train.backbone_lr_scale", self.backbone_lr_scale, 0.0, 1.0, lo_open=True)
        at_least("train.batch_size", self.batch_size, 1)
        positive("train.lr", self.lr)
        at_least("train.weight_decay", self.weight_decay, 0.0)
        at_least("train.num_workers", self.num_workers, 0)
        positive("train.cpus_per_worker", self.cpus_per_worker)
        in_range("train.val_fraction", self.val_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        one_of("train.calibration", self.calibration, CALIBRATIONS)
        one_of("train.keep_fold_models", self.keep_fold_models, ENSEMBLE_MODES)
        at_least("train.calibration_folds", self.calibration_folds, 2)
        at_least("train.min_steps", self.min_steps, 0)
        at_least("train.max_failures", self.max_failures, 0)
        in_range("train.gate_share", self.gate_share, 0.0, 1.0, hi_open=True)
        in_range("train.gate_margin", self.gate_margin, 0.0, 1.0)
        at_least("train.gate_min_items", self.gate_min_items, 1)
        at_least("train.checkpoint_every", self.checkpoint_every, 1)
        at_least("train.worker_cache_mb", self.worker_cache_mb, 0)
        one_of("train.augment", self.augment, AUGMENTATIONS)
        one_of("train.embedding_cache", self.embedding_cache, EMBEDDING_CACHE_MODES)
        in_range("train.warmup_fraction", self.warmup_fraction, 0.0, 1.0, hi_open=True)
        self.pseudo_labels.check()


@dataclass
class AuditConfig:
    """Seed audit: k-fold out-of-sample probabilities, then cleanlab's confident learning."""

    folds: int = setting(5, "k: stratified folds; the k fold models train in parallel as Ray tasks")
    epochs: int = setting(0, "epochs per fold model; 0 = train.epochs")
    method: str = setting(
        "low_self_confidence",
        "cleanlab find_label_issues filter_by: which items are flagged (low_self_confidence: "
        "cleanlab's estimated number of issues, lowest self-confidence first)",
        AUDIT_METHODS,
    )
    rank_by: str = setting(
        "self_confidence",
        "cleanlab label-quality score that ranks the items",
        AUDIT_SCORES,
    )
    cpus_per_fold: float = setting(1.0, "CPUs each fold task reserves (torch threads follow)")
    gpus_per_fold: float = setting(0.0, "GPU share per fold task; 0 = CPU")
    reuse: bool = setting(True, "reuse a committed audit of the same seed fingerprint and settings")

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        at_least("audit.folds", self.folds, 2)
        at_least("audit.epochs", self.epochs, 0)
        one_of("audit.method", self.method, AUDIT_METHODS)
        one_of("audit.rank_by", self.rank_by, AUDIT_SCORES)
        positive("audit.cpus_per_fold", self.cpus_per_fold)
        at_least("audit.gpus_per_fold", self.gpus_per_fold, 0.0)
