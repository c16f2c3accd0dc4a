"""The building blocks of the schema: allowed values, a key with its help text, and the
one-line checks every section uses (each names the key it refuses)."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from raylabel.errors import ConfigError

MODALITIES = ("image", "text")
#: One class per item, or a set of classes per item (tagging).
TASKS = ("multiclass", "multilabel")


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
EMBEDDING_CACHE_MODES = ("auto", "never")


CALIBRATIONS = ("crossfit", "holdout")


QC_BOUNDS = ("clopper_pearson", "wilson", "point")
ENSEMBLE_MODES = ("auto", "always", "never")


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


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


TEXT_EXTENSIONS = (".txt",)


def doc(text: str, choices: tuple[str, ...] = ()) -> dict[str, str]:
    """A key's field metadata: its one-line help (`raylabel <stage> -h`,
    docs/configuration.md), ending with the allowed values its check uses, if any."""
    return {"help": f"{text}; one of {' | '.join(choices)}" if choices else text}


def setting(default: Any, text: str, choices: tuple[str, ...] = ()) -> Any:
    """A schema key with an immutable default and its help (see `doc`)."""
    return field(default=default, metadata=doc(text, choices))


def safe_name(value: str) -> bool:
    """Names that become path parts (runs, drops, models) stay plain: no traversal."""
    return (
        bool(value) and all(c.isalnum() or c in "-_." for c in value) and value not in (".", "..")
    )


def one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    """Refuse a value outside its allowed set, naming the key and the choices."""
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def at_least(key: str, value: float, minimum: float) -> None:
    """Refuse a value under its minimum, naming the key."""
    if value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value}")


def positive(key: str, value: float) -> None:
    """Refuse a zero or negative value, naming the key."""
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def in_range(
    key: str, value: float, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
) -> None:
    """Refuse a value outside its interval (open or closed ends), naming the key."""
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"{key}: must be in {left}{lo}, {hi}{right}, got {value}")


def default_extensions(modality: str) -> list[str]:
    """File extensions a folder input is filtered by when *.extensions is not set."""
    return list(IMAGE_EXTENSIONS if modality == "image" else TEXT_EXTENSIONS)


def check_extensions(key: str, values: list[str] | None) -> None:
    """Extensions must start with "." so a filter never matches by accident."""
    for ext in values or []:
        if not ext.startswith("."):
            raise ConfigError(f"{key}: {ext!r} must start with '.'")
