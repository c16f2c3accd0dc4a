"""The checkpoint contract: a model directory holds `model.safetensors` and `model_card.json`.

Weights are only ever read with safetensors (no pickle), and the card must agree with the
weights (classes, shapes) or loading stops with a clear error: a bucket is not a trusted
source of code. The card is what a labeler needs to reproduce predictions and what a
reviewer needs to trust them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raylabel.errors import ModelLoadError
from raylabel.io import storage
from raylabel.io.layout import CARD_FILE
from raylabel.io.storage import StorageOptions

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_FILE = "model.safetensors"
# the items the thresholds came from; labeling adds reviewed items to them
CALIBRATION_FILE = "calibration.parquet"
# cross-fitted fold models, each a model directory of its own (infer.ensemble)
FOLDS_DIR = "folds"
CARD_FORMAT = 1
UNSAFE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


@dataclass
class ModelCard:
    """What a labeler needs to reproduce predictions, and what a reviewer needs to trust them."""

    model_version: str
    arch: str
    modality: str
    classes: list[str]
    preprocessing: dict[str, Any]
    # multiclass: one softmax over the classes; multilabel: one sigmoid per class, decided alone
    task: str = "multiclass"
    temperature: float = 1.0
    # multilabel: one temperature per class (the card's class order); empty for multiclass
    temperatures: list[float] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    threshold_source: dict[str, str] = field(default_factory=dict)
    global_threshold: float = 1.0
    # multilabel: a class is negative at or below its negative threshold (thresholds: positive)
    negative_thresholds: dict[str, float] = field(default_factory=dict)
    negative_threshold_source: dict[str, str] = field(default_factory=dict)
    target_precision: float = 0.95
    confidence_level: float = 0.95
    validation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # self-training provenance (raylabel.pseudo): used count, per-run counts, gate evidence
    pseudo_labels: dict[str, Any] = field(default_factory=dict)
    # cross-fitted fold models kept for labeling by their ensemble (infer.ensemble)
    ensemble: dict[str, Any] = field(default_factory=dict)
    seed_fingerprint: str = ""
    weights_sha256: str = ""
    created_at: str = ""
    raylabel_version: str = ""
    format_version: int = CARD_FORMAT

    def to_json(self) -> dict[str, Any]:
        """The card as the plain dict written to model_card.json (every field)."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        """Rebuild a card from model_card.json: unknown keys are ignored so older code reads newer
        cards, and a card without its identity fields is a ModelLoadError."""
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("model_version", "arch", "modality", "classes") if k not in data]
        if missing:
            raise ModelLoadError(f"model card is missing {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def class_threshold(self, index: int) -> float:
        """The acceptance threshold of class `index`; a class without one of its own falls back to
        the global threshold, so every class always has one."""
        name = self.classes[index]
        return float(self.thresholds.get(name, self.global_threshold))


def sha256_file(path: Path) -> str:
    """A file's sha256, read in 1 MiB chunks: the card records the weights' hash so swapped or
    corrupt weights are refused at load."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checked_weights(model_dir: Path, card: ModelCard) -> Path:
    """The model directory's weights file, refused when missing or when its sha256 is not
    the one the card recorded (swapped or corrupt weights never load)."""
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"{model_dir}: no {WEIGHTS_FILE}")
    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise ModelLoadError(f"{weights}: sha256 does not match the model card")
    return weights


def check_label_map(model_dir: Path, config: Any, card: ModelCard) -> None:
    """A transformers model's label map must be the card's classes, in the card's order."""
    labels = [config.id2label[i] for i in range(config.num_labels)]
    if labels != list(card.classes):
        raise ModelLoadError(
            f"{model_dir}: weights do not match the model card (model labels {labels}, "
            f"card classes {card.classes})"
        )


def save_model_dir(model: nn.Module, card: ModelCard, out_dir: Path) -> ModelCard:
    """Write weights (safetensors) and the card; the card records the weights' hash."""
    from safetensors.torch import save_file  # torch only where weights are written

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    card.weights_sha256 = sha256_file(out_dir / WEIGHTS_FILE)
    (out_dir / CARD_FILE).write_text(json.dumps(card.to_json(), indent=2))
    return card


def rewrite_card(card: ModelCard, model_dir: Path) -> None:
    """Write the card again into a model directory not yet published (a late verdict such
    as the promotion gate's goes on it)."""
    (model_dir / CARD_FILE).write_text(json.dumps(card.to_json(), indent=2))


def read_card(model_dir: Path) -> ModelCard:
    """The card of a local model directory; a missing or malformed card is a ModelLoadError, never a
    half-loaded model."""
    path = model_dir / CARD_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: no {CARD_FILE}")
    try:
        return ModelCard.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc.msg})") from None


def card_line(info: dict[str, Any] | None) -> str | None:
    """One human line for a card's `pseudo_labels` (None when the feature was off)."""
    if not info or info.get("status") in (None, "disabled"):
        return None
    if info["status"] == "used":
        runs = ", ".join(f"{r}: {n}" for r, n in info.get("per_run", {}).items())
        return (
            f"pseudo-labels: {info['used']} used (loss weight {info['weight']:g}) from "
            f"{len(info.get('per_run', {}))} run(s) [{runs}]; {info['reason']}"
        )
    return f"pseudo-labels {info['status']}: {info['reason']}"


def pseudo_summary(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The card's `pseudo_labels` for summary.json, with its human line (None when off)."""
    line = card_line(info)
    return {**(info or {}), "line": line} if line else None


def read_card_uri(model_dir_uri: str, opts: StorageOptions) -> ModelCard:
    """The model card of a published model, read without downloading the weights."""
    from raylabel.models.card import ModelCard

    return ModelCard.from_json(
        storage.read_json(storage.join(model_dir_uri, "model_card.json"), opts)
    )


def copy_model_dir(saved_dir: Path, card: ModelCard, out_dir: Path) -> None:
    """A `save_pretrained`-style directory (safetensors weights + tokenizer) plus our card
    recording the weights' hash."""
    import shutil

    shutil.copytree(saved_dir, out_dir)
    card.weights_sha256 = sha256_file(out_dir / WEIGHTS_FILE)
    (out_dir / CARD_FILE).write_text(json.dumps(card.to_json(), indent=2))


def refuse_pickles(directory: Path, what: str = "model directory") -> None:
    """Nothing that can run code on load: a directory holding pickle-capable files (anywhere
    in it, a tokenizer folder included) is refused before any loader opens it."""
    unsafe = sorted(
        str(p.relative_to(directory))
        for p in Path(directory).rglob("*")
        if p.is_file() and p.suffix.lower() in UNSAFE_SUFFIXES
    )
    if unsafe:
        raise ModelLoadError(
            f"{directory}: refusing to load a {what} holding pickle-capable files "
            f"({', '.join(unsafe)}); only safetensors weights and JSON/text tokenizers are accepted"
        )


#: below this many calibration (seed) items per class the fold ensemble paid in the
#: small-seed benchmark (bench/small_seed.py: +0.025 coverage at 40 per class, -0.009 at 100)
ENSEMBLE_BELOW_ITEMS_PER_CLASS = 75


def ensemble_pays(n_items: int, n_classes: int) -> bool:
    """Whether a seed is small enough that labeling with the fold ensemble is worth its
    k-fold inference cost (`auto` for train.keep_fold_models and infer.ensemble)."""
    return n_items < ENSEMBLE_BELOW_ITEMS_PER_CLASS * max(1, n_classes)
