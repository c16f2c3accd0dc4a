"""Model architectures and the checkpoint contract.

A model directory holds `model.safetensors` and `model_card.json`. Weights are only ever
read with safetensors (no pickle), and the card must agree with the weights (classes,
shapes) or loading stops with a clear error: a bucket is not a trusted source of code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
CARD_FORMAT = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNSAFE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


class ModelLoadError(ValueError):
    """A model directory that is incomplete, unsafe, or inconsistent with its card."""


class SmallCNN(nn.Module):
    """Fast default: a cheap stem, three conv blocks and global pooling (~20 MMAC at 48 px),
    so a CPU-only laptop trains it in seconds per epoch."""

    def __init__(self, num_classes: int, dropout: float = 0.2, width: int = 16) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *conv(3, width),
            nn.MaxPool2d(2),
            *conv(width, width * 2),
            *conv(width * 2, width * 2),
            nn.MaxPool2d(2),
            *conv(width * 2, width * 4),
            *conv(width * 4, width * 4),
            nn.MaxPool2d(2),
            *conv(width * 4, width * 8),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width * 8, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(x)))


class ImageClassifier(nn.Module):
    """Takes uint8 NCHW batches so preprocessing tasks ship 4x fewer bytes than floats."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return self.backbone(x)


def build_image_model(arch: str, num_classes: int, dropout: float = 0.2) -> ImageClassifier:
    """Random-init architecture by name (pretrained weights are loaded separately)."""
    if arch == "small_cnn":
        backbone: nn.Module = SmallCNN(num_classes, dropout=dropout)
    elif arch in ("resnet18", "resnet50"):
        import torchvision

        backbone = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    elif arch == "mobilenet_v3_small":
        import torchvision

        backbone = torchvision.models.mobilenet_v3_small(
            weights=None, num_classes=num_classes, dropout=dropout
        )
    else:
        raise ValueError(f"model.arch: unknown image architecture {arch!r}")
    return ImageClassifier(backbone)


def load_pretrained_backbone(model: ImageClassifier, state: dict[str, torch.Tensor]) -> list[str]:
    """Load a backbone state dict, skipping tensors whose shape differs (the class head).

    Returns the names that were skipped, so the caller can report them.
    """
    own = model.backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(usable))
    model.backbone.load_state_dict(usable, strict=False)
    return skipped


@dataclass
class ModelCard:
    """What a labeler needs to reproduce predictions, and what a reviewer needs to trust them."""

    model_version: str
    arch: str
    modality: str
    classes: list[str]
    preprocessing: dict[str, Any]
    temperature: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    threshold_source: dict[str, str] = field(default_factory=dict)
    global_threshold: float = 1.0
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
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("model_version", "arch", "modality", "classes") if k not in data]
        if missing:
            raise ModelLoadError(f"model card is missing {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def class_threshold(self, index: int) -> float:
        name = self.classes[index]
        return float(self.thresholds.get(name, self.global_threshold))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model_dir(model: nn.Module, card: ModelCard, out_dir: Path) -> ModelCard:
    """Write weights (safetensors) and the card; the card records the weights' hash."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    card.weights_sha256 = sha256_file(out_dir / WEIGHTS_FILE)
    (out_dir / CARD_FILE).write_text(json.dumps(card.to_json(), indent=2))
    return card


def read_card(model_dir: Path) -> ModelCard:
    path = model_dir / CARD_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: no {CARD_FILE}")
    try:
        return ModelCard.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc.msg})") from None


def load_model_dir(model_dir: Path) -> tuple[nn.Module, ModelCard]:
    """Build the architecture named by the card and load its safetensors weights strictly."""
    unsafe = sorted(p.name for p in model_dir.iterdir() if p.suffix.lower() in UNSAFE_SUFFIXES)
    if unsafe:
        raise ModelLoadError(
            f"{model_dir}: refusing to load a model directory holding pickle-capable files "
            f"({', '.join(unsafe)}); only safetensors weights are accepted"
        )
    card = read_card(model_dir)
    if card.modality == "text" and card.arch == "rnn":
        from raylabel.text_rnn import load_rnn_model

        return load_rnn_model(model_dir, card), card
    if card.modality == "text":
        return _load_text_model(model_dir, card), card
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"{model_dir}: no {WEIGHTS_FILE}")
    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise ModelLoadError(f"{weights}: sha256 does not match the model card")
    if card.modality != "image":
        raise ModelLoadError(f"{model_dir}: modality {card.modality!r} is not supported")
    model = build_image_model(card.arch, len(card.classes))
    try:
        state = load_file(str(weights))
    except SafetensorError as exc:
        raise ModelLoadError(f"{weights}: not a valid safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelLoadError(
            f"{weights}: weights do not match the model card "
            f"(arch={card.arch}, {len(card.classes)} classes): {detail}"
        ) from None
    model.eval()
    return model, card


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json")


def _load_text_model(model_dir: Path, card: ModelCard) -> nn.Module:
    """A transformers classifier saved with save_pretrained; safetensors only, and its
    label map must be the card's classes in the same order."""
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"{model_dir}: no {WEIGHTS_FILE}")
    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise ModelLoadError(f"{weights}: sha256 does not match the model card")
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{model_dir}: no tokenizer ({' / '.join(TOKENIZER_FILES)}); a text model "
            "directory must carry the tokenizer it was trained with"
        )
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: cannot load the model ({_first(exc)})") from None
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels != list(card.classes):
        raise ModelLoadError(
            f"{model_dir}: weights do not match the model card (model labels {labels}, "
            f"card classes {card.classes})"
        )
    model.eval()
    return model


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class Predictor:
    """A loaded model plus its card: logits and embeddings for uint8 image batches."""

    def __init__(
        self, model: nn.Module, card: ModelCard, device: str = "cpu", pad_id: int = 0
    ) -> None:
        self.model = model.to(device)
        if device.startswith("cuda") and card.modality == "image":
            # NHWC convolutions are the fast path of cuDNN with bf16 tensor cores
            self.model = self.model.to(memory_format=torch.channels_last)
        self.card = card
        self.device = device
        self.pad_id = pad_id

    def probabilities(
        self, batch: dict[str, np.ndarray], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw, calibrated) softmax probabilities of the selected rows: the card's
        temperature makes the second mean what it says."""
        logits = self.logits_for(batch, rows)
        return softmax_rows(logits), softmax_rows(logits, float(self.card.temperature or 1.0))

    def logits_for(self, batch: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """Logits for the selected rows of a preprocessed batch, whatever the modality."""
        if self.card.modality == "text":
            return self.text_logits(list(batch["input_ids"][rows]))
        return self.logits(batch["pixels"][rows])

    @torch.inference_mode()
    def text_logits(self, ids: list[np.ndarray]) -> np.ndarray:
        from raylabel.text import pad

        if self.card.arch == "rnn":  # length buckets: each padded only to its own longest
            from raylabel.text_rnn import bucketed_logits

            bucket = int(self.card.preprocessing.get("rnn", {}).get("bucket_size", 0))
            return bucketed_logits(self.model, ids, self.pad_id, bucket, self.device)
        input_ids, mask = pad(ids, self.pad_id)
        use_amp = self.device.startswith("cuda")
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            out = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
            ).logits
        return out.float().cpu().numpy()

    @classmethod
    def from_dir(cls, model_dir: Path, device: str = "cpu") -> Predictor:
        model, card = load_model_dir(model_dir)
        pad_id = 0
        if card.modality == "text":
            from raylabel.text import load_tokenizer

            pad_id = int(load_tokenizer(str(model_dir), card.arch).pad_token_id or 0)
        return cls(model, card, device, pad_id)

    @torch.inference_mode()
    def logits(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device)
        use_amp = self.device.startswith("cuda")
        if use_amp:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            out = self.model(x)
        return out.float().cpu().numpy()


def softmax_rows(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / T in float64, shifted by the row max (no overflow)."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class EnsemblePredictor:
    """The k cross-fitted fold models of a card, labeling together: the mean of their
    calibrated probabilities (each under the card's temperature, fit on their own
    out-of-fold logits), and the mean of their raw ones."""

    def __init__(self, members: list[Predictor], card: ModelCard) -> None:
        if not members:
            raise ModelLoadError(f"model {card.model_version}: the ensemble has no members")
        self.members = members
        self.card = card

    @classmethod
    def from_dir(cls, model_dir: Path, device: str = "cpu") -> EnsemblePredictor:
        card = read_card(model_dir)
        members = card.ensemble.get("members") or []
        if not members:
            raise ModelLoadError(
                f"{model_dir}: infer.ensemble=true needs a model trained with "
                "train.calibration=crossfit and train.keep_fold_models=true"
            )
        loaded = []
        for rel in members:
            sub = (model_dir / rel).resolve()
            if model_dir.resolve() not in sub.parents:
                raise ModelLoadError(f"{model_dir}: ensemble member {rel!r} is outside the model")
            loaded.append(Predictor.from_dir(sub, device))
        return cls(loaded, card)

    def probabilities(
        self, batch: dict[str, np.ndarray], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        raws, cals = zip(*(m.probabilities(batch, rows) for m in self.members), strict=True)
        return np.mean(raws, axis=0), np.mean(cals, axis=0)
